"""The /health page for browsers, rendered in headless Chromium with the network off."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"

# Chromium calls Google services on its own (updates, account checks, time) even
# with background networking off, so every run also sends all host lookups
# nowhere and all traffic to a closed port on loopback: nothing leaves the box.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
    "--virtual-time-budget=3000",
)

# Anything that would make a browser fetch something: an address with a scheme or
# a protocol-relative one, an external resource element, or a CSS import or url().
EXTERNAL_REFERENCE = re.compile(
    r"[a-z][a-z0-9+.-]*://|\"//|'//|<script|<link|<img|<iframe|<object|<embed|"
    r"\bsrc=|@import|url\(", re.IGNORECASE)

# Written into a copy of the page by the test only: after the load event it puts
# the number of resources the page fetched into the DOM for --dump-dom to show.
RESOURCE_PROBE = ("<script>addEventListener('load', function () {"
                  "document.body.setAttribute('data-resources', "
                  "performance.getEntriesByType('resource').length);});</script>")


class FakeWorker:
    """A background worker that reports itself alive."""

    def __init__(self, name: str) -> None:
        self.name = name

    def is_alive(self) -> bool:
        return True


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium is not installed; tests/install-system-packages.sh installs it")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with a fresh profile folder and the network blocked."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def running(serve):
    return serve(health={"cache_seconds": "0"})


@pytest.fixture
def contacts(running):
    return running.appliance.store.load_contacts()


@pytest.fixture
def page(running) -> str:
    """The HTML health page of an appliance with Google sync runs and recent traffic."""
    appliance = running.appliance
    appliance.threads.append(FakeWorker("sync-scheduler"))
    now = time.time()
    store = appliance.store
    store.set_state("google.authorisation", "ok")
    store.set_state("sync.last_success_at", str(now - 7200))
    store.set_state("sync.last_error", "Google answered 503 after 5 tries")
    store.set_state("sync.consecutive_failures", "1")
    with store.write() as connection:
        for number in range(12):
            outcome = "error" if number == 11 else "ok"
            connection.execute(
                "INSERT INTO sync_runs (run_id, kind, started_at, finished_at, outcome, "
                "added, updated, deleted, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (f"run-{number}", "full" if number == 0 else "incremental",
                 now - 3600 + number * 60, now - 3600 + number * 60 + 2.5, outcome,
                 400 if number == 0 else number, number % 3, 1 if number == 5 else 0,
                 "Google answered 503 after 5 tries" if outcome == "error" else ""))
    for _ in range(25):
        running.get("/directory", headers={"x-CiscoIPPhoneModelName": "CP-8845"})
    response = running.get("/health", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return response.text


def test_health_page_has_no_external_reference(page):
    assert EXTERNAL_REFERENCE.findall(page) == []


def test_health_page_shows_no_contact_data(page, contacts):
    shown = [text for contact in contacts
             for text in [contact.family_name, contact.display_name]
             + [number.raw for number in contact.numbers]
             if len(text) > 3 and text in page]
    assert contacts
    assert shown == []


def test_health_page_lists_last_ten_runs(page):
    rows = re.findall(r'<tr><td class="time">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>', page)
    assert len(rows) == 10


def test_health_page_renders_offline_in_chromium(page, tmp_path):
    html_file = tmp_path / "health.html"
    html_file.write_text(page, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "health-page.png"
    screenshot.unlink(missing_ok=True)
    result = run_chromium(tmp_path, "--window-size=1100,1900",
                          f"--screenshot={screenshot}", html_file.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000


def test_health_page_dom_names_every_component(page, tmp_path):
    html_file = tmp_path / "health.html"
    html_file.write_text(page, encoding="utf-8")
    result = run_chromium(tmp_path, "--dump-dom", html_file.as_uri())
    components = set(re.findall(r'data-check="([^"]+)"', result.stdout))
    assert components == {
        "database:responseTime", "database:integrity", "contacts:count", "data:freshness",
        "google:authorisation", "scheduler:alive", "metrics:alive", "disk:free",
        "logs:writing", "sync:lastError"}
    assert 'id="rate-chart"' in result.stdout
    assert 'id="latency-chart"' in result.stdout
    assert "<rect" in result.stdout


def test_health_page_fetches_no_resource(page, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", RESOURCE_PROBE + "</body>"), encoding="utf-8")
    result = run_chromium(tmp_path, "--dump-dom", probed.as_uri())
    assert 'data-resources="0"' in result.stdout
