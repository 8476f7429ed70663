"""Health checks: freshness, authorisation, threads, disk, caching, /health, /livez, /readyz."""

from __future__ import annotations

import time
from collections import namedtuple
from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.health import FAIL, PASS, WARN, HealthChecker, RequestHistory, worst_status
from appliance.logs import LogStatus, log_status
from appliance.model import Contact
from appliance.store import Store
from appliance.web.health import prefers_html

NOW = 1_800_000_000.0
GIB = 1024 ** 3
DiskUsage = namedtuple("DiskUsage", "total used free")


class Clock:
    """A clock that returns the same time until a test moves it."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeWorker:
    """A background worker with a name and a switchable liveness."""

    def __init__(self, name: str, is_running: bool = True) -> None:
        self.name = name
        self.is_running = is_running

    def is_alive(self) -> bool:
        return self.is_running


@pytest.fixture
def store(tmp_path):
    opened = Store.open(tmp_path / "data")
    yield opened
    opened.close()


@pytest.fixture
def make_checker(store, make_config):
    """Build a HealthChecker on the test store with a pinned clock and fake threads."""

    def factory(health: dict[str, str] | None = None, threads=None, clock=None,
                free_bytes: int = 50 * GIB, log_status=log_status) -> HealthChecker:
        config = make_config(health={"cache_seconds": "0", **(health or {})})
        workers = threads if threads is not None else [FakeWorker("sync-scheduler"),
                                                       FakeWorker("metrics")]
        return HealthChecker(store, config, threads=lambda: workers, log_status=log_status,
                             clock=clock or Clock(),
                             disk_usage=lambda path: DiskUsage(100 * GIB, 0, free_bytes))

    return factory


def authorise(store: Store, last_success: float) -> None:
    """Write the contacts and state a successful Google sync leaves behind."""
    store.replace_source("google", [Contact("google", "people/c1", given_name="Ada")])
    store.set_state("google.authorisation", "ok")
    store.set_state("sync.last_success_at", str(last_success))
    store.set_state("sync.last_attempt_at", str(last_success))
    store.set_state("sync.consecutive_failures", "0")
    store.set_state("sync.last_error", "")


def check_status(report, key: str) -> str:
    return next(check.status for check in report.checks if check.key == key)


def test_health_fresh_then_stale_then_failing(store, make_checker):
    clock = Clock()
    checker = make_checker(clock=clock)
    authorise(store, NOW - 60)
    fresh = checker.report()
    clock.now = NOW + 3600
    stale = checker.report()
    clock.now = NOW + 86400
    failing = checker.report()
    assert fresh.status == PASS
    assert fresh.http_status == 200
    assert stale.status == WARN
    assert stale.http_status == 200
    assert check_status(stale, "data:freshness") == WARN
    assert failing.status == FAIL
    assert failing.http_status == 503
    assert "was 24 hours ago" in failing.output


def test_health_freshness_thresholds_configurable(store, make_checker):
    checker = make_checker(health={"freshness_warn_minutes": "5",
                                   "freshness_fail_minutes": "10"})
    authorise(store, NOW - 6 * 60)
    assert checker.report().status == WARN


def test_health_authorisation_lost_fails(store, make_checker):
    checker = make_checker()
    authorise(store, NOW - 60)
    assert checker.report().status == PASS
    store.set_state("google.authorisation", "needed")
    report = checker.report()
    assert report.status == FAIL
    assert check_status(report, "google:authorisation") == FAIL
    assert "must authorise the appliance at /setup" in report.output


@pytest.mark.parametrize("free_mib, status", [
    (2000, PASS),
    (400, WARN),
    (50, FAIL),
])
def test_health_disk_low_by_threshold(store, make_checker, free_mib, status):
    checker = make_checker(health={"disk_warn_free_mib": "500", "disk_fail_free_mib": "100"},
                           free_bytes=free_mib * 1024 * 1024)
    authorise(store, NOW - 60)
    report = checker.report()
    assert check_status(report, "disk:free") == status
    assert report.status == status


def test_health_disk_threshold_on_real_disk(store, make_config):
    config = make_config(health={"disk_warn_free_mib": "10000000",
                                 "disk_fail_free_mib": "9999999", "cache_seconds": "0"})
    checker = HealthChecker(store, config, threads=list)
    report = checker.report()
    assert check_status(report, "disk:free") == FAIL
    assert "MiB free" in report.output


@pytest.mark.parametrize("health, fragment", [
    ({"freshness_warn_minutes": "60", "freshness_fail_minutes": "60"},
     "freshness_fail_minutes (60) must be more than freshness_warn_minutes (60)"),
    ({"disk_warn_free_mib": "100", "disk_fail_free_mib": "200"},
     "disk_fail_free_mib (200) must be less than disk_warn_free_mib (100)"),
])
def test_health_thresholds_rejected_when_reversed(make_checker, health, fragment):
    with pytest.raises(ConfigError) as raised:
        make_checker(health=health)
    assert fragment in str(raised.value)


def test_health_without_google_samples_warn(store, make_checker):
    store.replace_source("sample", [Contact("sample", "1", given_name="Ada")], also_clear=())
    report = make_checker(threads=[FakeWorker("metrics")]).report()
    assert report.status == WARN
    assert "only the bundled sample contacts" in report.output
    assert "scheduler:alive" not in [check.key for check in report.checks]


def test_health_without_google_import_passes(store, make_checker):
    store.replace_source("import", [Contact("import", "1", given_name="Ada")])
    store.set_state("import.last_at", str(NOW - 30 * 86400))
    report = make_checker(threads=[FakeWorker("metrics")]).report()
    freshness = next(check for check in report.checks if check.key == "data:freshness")
    assert report.status == PASS
    assert freshness.observed_value == 30 * 86400
    assert "Google sync is not configured" in freshness.output


def test_health_no_contacts_warns(make_checker):
    report = make_checker(threads=[FakeWorker("metrics")]).report()
    assert check_status(report, "contacts:count") == WARN


@pytest.mark.parametrize("threads, key, status", [
    ([FakeWorker("sync-scheduler", False), FakeWorker("metrics")], "scheduler:alive", FAIL),
    ([FakeWorker("metrics")], "scheduler:alive", FAIL),
    ([FakeWorker("sync-scheduler"), FakeWorker("metrics", False)], "metrics:alive", WARN),
    ([FakeWorker("sync-scheduler")], "metrics:alive", WARN),
])
def test_health_dead_thread_reported(store, make_checker, threads, key, status):
    authorise(store, NOW - 60)
    report = make_checker(threads=threads).report()
    assert check_status(report, key) == status
    assert report.status == status


def test_health_last_sync_error_warns(store, make_checker):
    authorise(store, NOW - 60)
    store.set_state("sync.last_error", "Google answered 503 after 5 tries")
    store.set_state("sync.consecutive_failures", "2")
    report = make_checker().report()
    assert check_status(report, "sync:lastError") == WARN
    assert "the last 2 Google sync runs failed" in report.output


@pytest.mark.parametrize("log_status, status, output", [
    (LogStatus("pass", "", None, None, 0, 0), PASS, "log files are off"),
    (LogStatus("pass", "", "/var/log/phonebook", None, 0, 4096), PASS, ""),
    (LogStatus("warn", "log files in /var/log/phonebook cannot be written (disk full)",
               "/var/log/phonebook", NOW - 5, 12, 4096), WARN, "disk full"),
])
def test_health_log_writing_status(store, make_checker, log_status, status, output):
    authorise(store, NOW - 60)
    report = make_checker(log_status=lambda: log_status).report()
    check = next(check for check in report.checks if check.key == "logs:writing")
    assert check.status == status
    assert output in check.output


def test_health_cached_until_ttl(store, make_checker):
    clock = Clock()
    checker = make_checker(health={"cache_seconds": "5"}, clock=clock)
    authorise(store, NOW - 60)
    first = checker.report()
    store.set_state("google.authorisation", "needed")
    clock.now += 4
    cached = checker.report()
    clock.now += 1
    renewed = checker.report()
    assert cached is first
    assert renewed.status == FAIL


def test_health_integrity_check_reported(store, make_checker):
    checker = make_checker()
    checker.check_integrity()
    authorise(store, NOW - 60)
    assert check_status(checker.report(), "database:integrity") == PASS


def test_health_json_shape(store, make_checker):
    authorise(store, NOW - 60)
    document = make_checker().report().to_json()
    check = document["checks"]["data:freshness"][0]
    assert document["status"] == "pass"
    assert document["version"]
    assert "output" not in document
    assert check["observedValue"] == 60.0
    assert check["observedUnit"] == "s"
    assert check["status"] == "pass"
    assert check["time"] == "2027-01-15T08:00:00Z"


def test_health_sync_runs_newest_first(store, make_checker):
    with store.write() as connection:
        for number in range(12):
            connection.execute(
                "INSERT INTO sync_runs (run_id, kind, started_at, finished_at, outcome, "
                "added, updated, deleted, error) VALUES (?, 'incremental', ?, ?, 'ok', ?, "
                "0, 0, '')", (f"run-{number}", NOW + number, NOW + number + 1, number))
    runs = make_checker().recent_sync_runs()
    assert len(runs) == 10
    assert runs[0].run_id == "run-11"
    assert runs[-1].added == 2


@pytest.mark.parametrize("a, b, worst", [
    (PASS, PASS, PASS), (PASS, WARN, WARN), (WARN, FAIL, FAIL), (FAIL, PASS, FAIL)])
def test_worst_status_picks_most_severe(a, b, worst):
    assert worst_status([a, b]) == worst


@pytest.mark.parametrize("accept, format_param, is_html", [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "", True),
    ("*/*", "", False),
    ("", "", False),
    ("application/health+json", "", False),
    ("application/json, text/html;q=0.5", "", False),
    ("text/html;q=0.9, application/json;q=0.8", "", True),
    ("text/html;q=0", "", False),
    ("*/*", "html", True),
    ("text/html", "json", False),
])
def test_health_accept_negotiation(accept, format_param, is_html):
    assert prefers_html(accept, format_param) is is_html


def test_request_history_hour_window():
    clock = Clock(NOW)
    history = RequestHistory(clock=clock)
    for duration in (0.002, 0.004, 0.2):
        history.add(duration)
    clock.now += 60
    history.add(0.01)
    rows = history.snapshot()
    assert len(rows) == 60
    assert rows[-2][1] == 3
    assert rows[-2][3] == 0.25
    assert rows[-1][1] == 1
    clock.now += 3600
    assert sum(row[1] for row in history.snapshot()) == 0


def test_health_served_codes_and_headers(serve):
    running = serve(health={"cache_seconds": "0"})
    running.appliance.threads.append(FakeWorker("sync-scheduler"))
    authorise(running.appliance.store, time.time() - 60)
    passing = running.get("/health")
    running.appliance.store.set_state("google.authorisation", "needed")
    failing = running.get("/health")
    assert passing.status_code == 200
    assert passing.headers["Content-Type"] == "application/health+json"
    assert passing.headers["Cache-Control"] == "max-age=0"
    assert passing.headers["Vary"] == "Accept"
    assert passing.json()["status"] == "pass"
    assert failing.status_code == 503
    assert failing.json()["status"] == "fail"


def test_livez_always_answers(serve):
    response = serve().get("/livez")
    assert response.status_code == 200
    assert response.text == "ok\n"


@pytest.mark.parametrize("samples, status", [("yes", 200), ("no", 503)])
def test_readyz_needs_contacts(serve, samples, status):
    response = serve(directory={"sample_contacts": samples}).get("/readyz")
    assert response.status_code == status


def test_readyz_not_ready_while_stopping(serve):
    running = serve()
    running.appliance.stop_event.set()
    response = running.get("/readyz")
    assert response.status_code == 503
    assert "stopping" in response.text


def test_health_every_check_documented(store, make_checker):
    page = (Path(__file__).resolve().parents[1] / "docs" / "monitoring.md").read_text(
        encoding="utf-8")
    authorise(store, NOW - 60)
    checker = make_checker()
    checker.check_integrity()
    store.set_state("sync.last_error", "timed out")
    keys = [check.key for check in checker.report().checks]
    undocumented = [key for key in keys if f"`{key}`" not in page]
    assert len(keys) == 10
    assert undocumented == []
