"""/metrics: whole output after scripted requests and events, access control and cost."""

from __future__ import annotations

import gzip
import os
import platform
import statistics
import time
from collections import namedtuple
from pathlib import Path
from string import Template
from types import SimpleNamespace

import bottle
import pytest
import requests
from prometheus_client.utils import floatToGoString

from appliance.metrics import MetricsThread, build_metrics, phone_family
from appliance.monitoring import route_methods
from appliance.server import Server
from appliance.store import Store
from appliance.web import metrics as metrics_route
from appliance.web.metrics import MetricsAccess, has_token
from appliance.web.middleware import RequestMiddleware
from conftest import wait_until

# The expected /metrics body; ${name} marks the values that depend on the machine.
GOLDEN = Path(__file__).parent / "golden" / "metrics_scripted.txt"
ARTIFACTS = Path(__file__).parent / "artifacts"
PINNED_NOW = 1_800_000_000.0
# A power of two, so start and end times and their sums stay exact in binary.
REQUEST_S = 2 ** -8
DiskUsage = namedtuple("DiskUsage", "total used free")


class SteppingTimer:
    """A monotonic clock that moves on by a fixed step at every reading."""

    def __init__(self, step_s: float) -> None:
        self.now = 1024.0
        self.step_s = step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


class PinnedTime:
    """Replaces the ``time`` module inside prometheus_client.metrics."""

    @staticmethod
    def time() -> float:
        return PINNED_NOW


class FakeStore:
    """The part of Store that the metrics refresh reads, returning fixed values."""

    def __init__(self, folder: Path, state: dict[str, str]) -> None:
        self.path = folder / "phonebook.sqlite3"
        self.state = state

    def count_contacts(self) -> int:
        return 412

    def count_numbers(self) -> int:
        return 530

    def size_bytes(self) -> int:
        return 3_145_728

    def get_state(self, key: str, default: str | None = None) -> str | None:
        return self.state.get(key, default)


def write_fake_proc(root: Path) -> dict[str, float]:
    """Write the /proc files the process collector reads; return what it should show."""
    (root / "self" / "fd").mkdir(parents=True)
    (root / "stat").write_text("cpu  1 2 3\nbtime 1799990000\n")
    fields = ["S"] + ["0"] * 21
    fields[11], fields[12] = "257", "50"  # utime, stime in clock ticks
    fields[19] = "1000"  # start time in ticks after boot
    fields[20] = "123456789"  # virtual memory in bytes
    fields[21] = "5000"  # resident memory in pages
    (root / "self" / "stat").write_text("4242 (python3) " + " ".join(fields) + "\n")
    (root / "self" / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max open files            1024                 4096                 files\n")
    for number in range(3):
        (root / "self" / "fd" / str(number)).write_text("")
    ticks = os.sysconf("SC_CLK_TCK")
    return {"rss": 5000.0 * os.sysconf("SC_PAGE_SIZE"), "cpu": 307 / ticks,
            "start": 1799990000 + 1000 / ticks}


def build_scripted_app(metrics, config):
    """A small app with phone-like routes, a failing route and /metrics."""
    app = bottle.Bottle(catchall=True)

    @app.get("/directory")
    def menu():
        return "<CiscoIPPhoneMenu/>"

    @app.get("/directory/search")
    def search():
        return "<CiscoIPPhoneDirectory/>"

    @app.get("/boom")
    def boom():
        raise RuntimeError("scripted failure")

    # Fixed error bodies, so the byte counts do not depend on Bottle's error page.
    for status in (404, 405, 500):
        app.error(status)(lambda error, status=status: f"error {status}\n")

    metrics_route.register(app, SimpleNamespace(metrics=metrics, config=config))
    metrics.create_series(route_methods(app))
    return RequestMiddleware(app, on_start=[metrics.on_start], on_finish=[metrics.on_finish])


@pytest.fixture
def scripted(tmp_path, make_config, monkeypatch):
    """A served scripted app on a fresh registry with pinned clocks and /proc."""
    monkeypatch.setattr("prometheus_client.metrics.time", PinnedTime)
    expected = write_fake_proc(tmp_path / "proc")
    metrics = build_metrics(clock=lambda: PINNED_NOW, timer=SteppingTimer(REQUEST_S),
                            disk_usage=lambda path: DiskUsage(8 << 30, 6 << 30, 2 << 30),
                            proc_dir=str(tmp_path / "proc"))
    wsgi = build_scripted_app(metrics, make_config())
    server = Server(wsgi, "127.0.0.1", 0, threads=1)
    server.start_in_thread()
    yield SimpleNamespace(metrics=metrics, expected=expected, tmp_path=tmp_path,
                          base_url=f"http://127.0.0.1:{server.port}")
    server.close()


def run_script(base_url: str, metrics, tmp_path: Path) -> None:
    """Send the scripted requests and emit the scripted events."""
    session = requests.Session()
    for headers in ({"x-CiscoIPPhoneModelName": "CP-7965G"},
                    {"User-Agent": "Cisco-CP-8845-3PCC/11.3"},
                    {"x-CiscoIPPhoneModelName": "CP-8851"},
                    {}):
        session.get(f"{base_url}/directory", headers=headers, timeout=5)
    session.get(f"{base_url}/directory/search?name=ada",
                headers={"x-CiscoIPPhoneModelName": "CP-7841"}, timeout=5)
    session.get(f"{base_url}/wp-admin/setup.php", timeout=5)
    session.get(f"{base_url}/.env", timeout=5)
    session.get(f"{base_url}/boom", timeout=5)
    session.post(f"{base_url}/directory", timeout=5)

    events = SimpleNamespace(handlers={})
    events.subscribe = lambda name, handler: events.handlers.setdefault(name, handler)
    metrics.subscribe(events)
    emit = lambda name, **fields: events.handlers[name](**fields)  # noqa: E731
    emit("directory.search", kind="name", duration_s=0.0007, results=3)
    emit("directory.search", kind="number", duration_s=0.002, results=1)
    emit("directory.search", kind="keypad", duration_s=0.03, results=40)
    emit("directory.page", object="CiscoIPPhoneDirectory")
    emit("directory.page", object="CiscoIPPhoneMenu")
    emit("sync.started", run_id="r1", kind="full", source="google")
    emit("sync.finished", run_id="r1", kind="full", source="google", outcome="ok",
         duration_s=4.2, added=400, updated=10, deleted=2, error=None,
         started_at=PINNED_NOW - 100, finished_at=PINNED_NOW - 96)
    emit("sync.finished", run_id="r2", kind="incremental", source="google",
         outcome="error", duration_s=0.3, added=0, updated=0, deleted=0,
         error="Google answered 503", started_at=PINNED_NOW - 10, finished_at=PINNED_NOW - 9)
    emit("google.call", method="connections.list", status=200, duration_s=0.2)
    emit("google.call", method="connections.list", status=503, duration_s=0.1)
    emit("google.call", method="connections.list", status=0, duration_s=30.0)
    emit("google.retry", method="connections.list", reason="503")
    emit("google.token_refresh", outcome="ok")
    emit("google.authorisation", authorised=True, reason="token refreshed")
    emit("notify.sent", channel="webhook", outcome="ok")
    emit("notify.sent", channel="email", outcome="error")

    state = {"google.authorisation": "ok", "sync.last_attempt_at": str(PINNED_NOW - 10),
             "sync.last_success_at": str(PINNED_NOW - 96), "sync.consecutive_failures": "1"}
    metrics.refresh(FakeStore(tmp_path, state), log_dir_bytes=2048)


def test_metrics_whole_output_after_script(scripted):
    run_script(scripted.base_url, scripted.metrics, scripted.tmp_path)
    response = requests.get(f"{scripted.base_url}/metrics", timeout=5)
    expected = Template(GOLDEN.read_text(encoding="utf-8")).substitute(
        rss=floatToGoString(scripted.expected["rss"]),
        cpu=floatToGoString(scripted.expected["cpu"]),
        start=floatToGoString(scripted.expected["start"]),
        python=platform.python_version(),
        platform=f"{platform.system()}-{platform.machine()}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.text == expected


def test_metrics_raw_path_never_a_label(scripted):
    run_script(scripted.base_url, scripted.metrics, scripted.tmp_path)
    body = requests.get(f"{scripted.base_url}/metrics", timeout=5).text
    assert "wp-admin" not in body
    assert ".env" not in body
    assert 'route="unmatched",status="404"} 2.0' in body


def test_metrics_openmetrics_negotiated(scripted):
    accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    response = requests.get(f"{scripted.base_url}/metrics", headers={"Accept": accept},
                            timeout=5)
    assert response.headers["Content-Type"].startswith(
        "application/openmetrics-text; version=1.0.0")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE phonebook_build info" in response.text


def test_metrics_gzip_when_accepted(scripted):
    response = requests.get(f"{scripted.base_url}/metrics", stream=True, timeout=5,
                            headers={"Accept-Encoding": "gzip"})
    raw = response.raw.read(decode_content=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert b"phonebook_contacts" in gzip.decompress(raw)


def test_metrics_name_filter(scripted):
    response = requests.get(f"{scripted.base_url}/metrics?name[]=phonebook_contacts",
                            timeout=5)
    assert response.text == ("# HELP phonebook_contacts Contacts in the store.\n"
                             "# TYPE phonebook_contacts gauge\nphonebook_contacts 0.0\n")


@pytest.mark.parametrize("model, user_agent, family", [
    ("CP-7965G", None, "79xx"),
    ("CP-7960", "", "79xx"),
    ("CP-7841", None, "78xx"),
    ("CP-8845", None, "88xx"),
    ("CP-8865NR", None, "88xx"),
    (None, "Cisco-CP-8845-3PCC/11.3", "3pcc"),
    ("CP-6841-3PCC", None, "3pcc"),
    ("CP-8961", None, "other"),
    ("CP-9971", None, "other"),
    ("Cisco IP Phone", None, "other"),
    (None, "Cisco/SPA504G-7.6.2", "other"),
    (None, "Mozilla/5.0 (X11; Linux x86_64)", None),
    (None, None, None),
])
def test_phone_family_from_headers(model, user_agent, family):
    assert phone_family(model, user_agent) == family


@pytest.mark.parametrize("allow, remote, allowed", [
    ("127.0.0.0/8", "127.0.0.1", True),
    ("127.0.0.0/8", "10.1.2.3", False),
    ("10.0.0.0/8, 192.168.0.0/16", "192.168.7.20", True),
    ("10.0.0.0/8", "::ffff:10.9.8.7", True),
    ("::1/128", "::1", True),
    ("fc00::/7", "fd12:3456::1", True),
    ("fc00::/7", "2001:db8::1", False),
    ("0.0.0.0/0", "not-an-address", False),
])
def test_metrics_access_by_network(allow, remote, allowed, make_config):
    config = make_config(metrics={"allow": allow})
    access = MetricsAccess(config.metrics.allow, "")
    status, _ = access.check(remote, "")
    assert (status == 200) is allowed


@pytest.mark.parametrize("header, matches", [
    ("Bearer s3cret-token-0123456789", True),
    ("bearer s3cret-token-0123456789", True),
    ("Bearer s3cret-token-012345678", False),
    ("Bearer ", False),
    ("Basic s3cret-token-0123456789", False),
    ("", False),
])
def test_metrics_token_comparison(header, matches):
    assert has_token(header, "s3cret-token-0123456789") is matches


TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("settings, headers, status", [
    ({}, {}, 200),
    ({"allow": "10.0.0.0/8"}, {}, 403),
    ({"bearer_token": TOKEN}, {}, 401),
    ({"bearer_token": TOKEN}, {"Authorization": "Bearer wrong-token-0123456789"}, 401),
    ({"bearer_token": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}, 200),
    ({"bearer_token": TOKEN, "allow": "10.0.0.0/8"}, {"Authorization": f"Bearer {TOKEN}"},
     403),
])
def test_metrics_access_served(serve, settings, headers, status):
    running = serve(metrics=settings)
    response = running.get("/metrics", headers=headers)
    assert response.status_code == status
    assert TOKEN not in response.text


def test_metrics_unauthorised_names_scheme(serve):
    running = serve(metrics={"bearer_token": TOKEN})
    response = running.get("/metrics")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_metrics_rejection_never_logs_token(serve, caplog):
    running = serve(metrics={"bearer_token": TOKEN})
    running.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert TOKEN not in caplog.text
    assert "metrics request rejected" in caplog.text


CONTRACT_NAMES = (
    "phonebook_http_requests_total", "phonebook_http_request_duration_seconds_bucket",
    "phonebook_http_requests_in_flight", "phonebook_http_response_bytes_total",
    "phonebook_directory_searches_total", "phonebook_directory_search_duration_seconds_bucket",
    "phonebook_directory_search_results_bucket", "phonebook_directory_pages_total",
    "phonebook_phone_requests_total", "phonebook_sync_enabled", "phonebook_sync_runs_total",
    "phonebook_sync_duration_seconds_bucket", "phonebook_sync_contacts_changed_total",
    "phonebook_sync_last_attempt_timestamp_seconds",
    "phonebook_sync_last_success_timestamp_seconds", "phonebook_sync_consecutive_failures",
    "phonebook_google_api_calls_total", "phonebook_google_api_retries_total",
    "phonebook_google_token_refreshes_total", "phonebook_google_authorised",
    "phonebook_contacts", "phonebook_numbers", "phonebook_database_size_bytes",
    "phonebook_data_disk_free_bytes", "phonebook_data_disk_total_bytes",
    "phonebook_log_dir_size_bytes", "phonebook_notifications_total", "phonebook_build_info",
    "phonebook_metrics_refresh_timestamp_seconds", "process_resident_memory_bytes",
    "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds",
)


def test_metrics_appliance_exposes_every_name(serve):
    running = serve()
    running.appliance.events.emit("google.call", method="connections.list", status=200,
                                  duration_s=0.1)
    running.appliance.events.emit("google.retry", method="connections.list", reason="429")
    body = running.get("/metrics").text
    sample_names = {line.split("{", 1)[0].split(" ", 1)[0]
                    for line in body.splitlines() if line and not line.startswith("#")}
    missing = [name for name in CONTRACT_NAMES if name not in sample_names]
    assert missing == []


def test_metrics_thread_refreshes_gauges(tmp_path):
    store = Store.open(tmp_path / "data")
    store.set_state("sync.last_success_at", "1799999000")
    store.set_state("google.authorisation", "needed")
    metrics = build_metrics()
    worker = MetricsThread(metrics, store, interval_s=0.05)
    worker.start()
    try:
        wait_until(lambda: metrics.refreshed_at._value.get() > 0)
        assert worker.is_alive()
    finally:
        worker.stop()
        store.close()
    assert not worker.is_alive()
    assert metrics.registry.get_sample_value("phonebook_database_size_bytes") > 0
    assert metrics.registry.get_sample_value("phonebook_data_disk_total_bytes") > 0
    assert metrics.registry.get_sample_value(
        "phonebook_sync_last_success_timestamp_seconds") == 1799999000
    assert metrics.registry.get_sample_value("phonebook_google_authorised") == 0
    assert metrics.registry.get_sample_value("phonebook_sync_enabled") == 1


def test_metrics_scrape_cost_measured(serve):
    running = serve()
    for path in ("/directory", "/health", "/livez", "/readyz", "/nowhere"):
        for _ in range(20):
            running.get(path, headers={"x-CiscoIPPhoneModelName": "CP-8845"})
    durations = []
    for _ in range(50):
        started = time.perf_counter()
        response = running.get("/metrics")
        durations.append(time.perf_counter() - started)
        assert response.status_code == 200
    median_ms = statistics.median(durations) * 1000
    report = (f"/metrics scrape over HTTP on 127.0.0.1: median {median_ms:.2f} ms, "
              f"max {max(durations) * 1000:.2f} ms over 50 scrapes, "
              f"{len(response.content)} bytes\n")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "metrics-scrape.txt").write_text(report, encoding="utf-8")
    print(report)


def test_metrics_every_name_documented():
    page = (Path(__file__).resolve().parents[1] / "docs" / "monitoring.md").read_text(
        encoding="utf-8")
    # prometheus-client names a family without the suffix its samples carry.
    suffixes = {"counter": "_total", "info": "_info"}
    names = {metric.name + suffixes.get(metric.type, "")
             for metric in build_metrics().registry.collect()}
    undocumented = sorted(name for name in names if f"`{name}`" not in page)
    assert undocumented == []


def test_metrics_head_gives_headers_only(scripted):
    response = requests.head(f"{scripted.base_url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.content == b""
