"""Profiling: the slow-request log, /debug/profile, the stack sampler and the CLI load."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance.profiling import ProfileBusy, Sampler, render_stack_profile, sample_stacks
from appliance.web.admin_auth import hash_password
from conftest import write_ini

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


def log_in(running) -> None:
    """Log the running appliance's session in as admin."""
    form = running.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = running.session.post(f"{running.base_url}/login", timeout=10,
                                    allow_redirects=False,
                                    data={"csrf_token": token, "password": PASSWORD,
                                          "next": "/debug/profile"})
    assert response.status_code == 303


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def profiled(serve, password_hash):
    return serve(profiling={"enabled": "yes", "slow_request_ms": "1",
                            "max_profile_seconds": "2", "sample_interval_ms": "5"},
                 admin={"password_hash": password_hash})


def slow_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == "slow request"]


def test_slow_request_logged_with_breakdown(profiled, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.profiling")
    profiled.get("/directory/search/name?q=a")
    record = slow_records(caplog)[-1]
    assert record.route == "/directory/search/<kind:re:name|number|keypad>"
    assert record.duration_ms >= 1
    assert record.query_ms > 0
    assert record.render_ms > 0
    assert record.other_ms >= 0


def test_slow_request_log_off_by_default(serve, caplog):
    caplog.set_level(logging.WARNING, logger="appliance.profiling")
    serve().get("/directory/search/name?q=a")
    assert slow_records(caplog) == []


def test_debug_profile_absent_when_disabled(serve, password_hash):
    running = serve(admin={"password_hash": password_hash})
    log_in(running)
    assert running.get("/debug/profile?seconds=1").status_code == 404


def test_debug_profile_needs_admin_login(profiled):
    response = profiled.get("/debug/profile?seconds=1", allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login?next=/debug/profile")


def test_debug_profile_returns_hot_stacks(profiled):
    log_in(profiled)
    response = profiled.get("/debug/profile?seconds=1&top=5")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "samples of every thread over 1 s, one every 5 ms" in response.text
    assert "# busiest functions" in response.text


@pytest.mark.parametrize("seconds, fragment", [
    ("0", "invalid seconds 0"),
    ("3", "invalid seconds 3"),
    ("ten", "invalid seconds 'ten'"),
])
def test_debug_profile_rejects_bad_seconds(profiled, seconds, fragment):
    log_in(profiled)
    response = profiled.get(f"/debug/profile?seconds={seconds}")
    assert response.status_code == 400
    assert fragment in response.text


def _spin_until(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def test_sampler_sees_other_threads():
    stop = threading.Event()
    worker = threading.Thread(target=_spin_until, args=(stop,), name="busy-worker")
    worker.start()
    try:
        profile = sample_stacks(0.3, 0.005)
    finally:
        stop.set()
        worker.join()
    busy = [frames for (thread, frames), _ in profile.stacks.items() if thread == "busy-worker"]
    text = render_stack_profile(profile)
    assert profile.samples >= 10
    assert any("test_profiling.py:_spin_until" in frames for frames in busy)
    assert "busy-worker;" in text


def test_sampler_allows_one_run_at_a_time():
    sampler = Sampler(interval_s=0.005, max_seconds=5)
    started = threading.Event()
    results = []

    def first_run() -> None:
        started.set()
        results.append(sampler.run(0.5, "first"))

    runner = threading.Thread(target=first_run)
    runner.start()
    started.wait(5)
    deadline = time.monotonic() + 5
    while not sampler.is_running and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(ProfileBusy):
        sampler.run(0.1, "second")
    runner.join()
    assert len(results) == 1


def run_cli(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args, "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_profile_command_prints_top_functions(tmp_path):
    config = write_ini(tmp_path / "config.ini", {"storage": {"data_dir": str(tmp_path / "data")}})
    result = run_cli("profile", "--requests", "40", "--top", "5", config=config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("40 requests in ")
    assert "statuses: 200: 40" in result.stdout
    assert "## top 5 functions by own time" in result.stdout
    assert "## top 5 functions by total time" in result.stdout
    assert "middleware.py" in result.stdout


def test_profile_command_rejects_relative_path(tmp_path):
    config = write_ini(tmp_path / "config.ini", {"storage": {"data_dir": str(tmp_path / "data")}})
    result = run_cli("profile", "--path", "directory", config=config)
    assert result.returncode == 2
    assert "Invalid --path 'directory'" in result.stderr
