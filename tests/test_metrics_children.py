"""Request metrics keep their labelled series after the first request."""

from __future__ import annotations

import pytest

from appliance.metrics import build_metrics
from appliance.web.middleware import RequestRecord


def finished(route: str, status: int) -> RequestRecord:
    return RequestRecord("id", "GET", route, route, status, 0.004, 2048, "127.0.0.1",
                         {"HTTP_X_CISCOIPPHONEMODELNAME": "CP-8845"})


@pytest.fixture
def metrics():
    return build_metrics()


def sample(metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_child_is_labels_series(metrics):
    assert metrics._child(metrics.pages, "CiscoIPPhoneMenu") is metrics.pages.labels(
        "CiscoIPPhoneMenu")


def test_repeated_requests_count_in_one_series(metrics):
    for _ in range(3):
        metrics.on_finish(finished("/directory/browse", 200))
    assert sample(metrics, "phonebook_http_requests_total", method="GET",
                  route="/directory/browse", status="200") == 3


@pytest.mark.parametrize("status", [404, 503])
def test_new_status_gets_its_own_series(metrics, status):
    metrics.on_finish(finished("/directory/browse", 200))
    metrics.on_finish(finished("/directory/browse", status))
    assert sample(metrics, "phonebook_http_requests_total", method="GET",
                  route="/directory/browse", status=str(status)) == 1


def test_repeated_requests_add_response_bytes(metrics):
    for _ in range(2):
        metrics.on_finish(finished("/lookup", 200))
    assert sample(metrics, "phonebook_http_response_bytes_total", route="/lookup") == 4096


def test_repeated_searches_count_by_kind(metrics):
    for kind in ("name", "name", "keypad"):
        metrics._on_search(kind=kind, duration_s=0.0002, results=4)
    assert sample(metrics, "phonebook_directory_searches_total", kind="name") == 2
