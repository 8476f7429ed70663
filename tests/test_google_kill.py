"""Sync processes stopped by a signal or killed midway: data intact, runs reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.sources.google.runs import INTERRUPTED_ERROR, recent_runs
from appliance.store import Store
from tests.conftest import wait_until
from tests.google_fixtures import fake_google, google_config, google_sync  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def run_sync_process(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "sync", "--full", "--config", str(config_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def start_slow_full_sync(fake_google, google_config, google_sync):
    """Sync once, change contacts, then start a slow full sync in a process.

    Returns once the process has asked for two pages, so it is between pages of
    its full sync.
    """
    for index in range(2500):
        fake_google._add_generated("connections", index)
    config = google_config()
    sync, _ = google_sync(config)
    assert sync.run().outcome == "ok"
    before = {(c.source_id, c.fingerprint()) for c in sync.store.load_contacts()}
    for resource_name in fake_google.first_resource_names(100):
        fake_google.update_person(resource_name, given="Changed")
    fake_google.delay_s = 0.5
    calls_before = len(fake_google.calls("connections.list"))
    process = run_sync_process(config.path)
    try:
        wait_until(lambda: len(fake_google.calls("connections.list")) >= calls_before + 2,
                   timeout_s=20)
    except AssertionError:
        process.kill()
        process.wait(timeout=10)
        raise
    return config, sync, before, process


def test_sync_killed_midway_keeps_previous_data(fake_google, google_config, google_sync):
    config, sync, before, process = start_slow_full_sync(fake_google, google_config,
                                                         google_sync)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    reopened = Store.open(config.storage.data_dir)
    try:
        after = {(c.source_id, c.fingerprint()) for c in reopened.load_contacts()}
        assert process.returncode == -signal.SIGKILL
        assert after == before
        assert reopened.integrity_check(quick=False) == "ok"
        assert recent_runs(reopened)[0].outcome == "running"
    finally:
        reopened.close()

    fake_google.delay_s = 0.0
    result = sync.run()
    runs = recent_runs(sync.store)
    assert result.outcome == "ok"
    assert len(result.updated) == 100
    assert runs[1].outcome == "interrupted"
    assert runs[1].error == INTERRUPTED_ERROR


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sync_signal_records_stopped_run(fake_google, google_config, google_sync, signum):
    config, _, before, process = start_slow_full_sync(fake_google, google_config,
                                                      google_sync)
    try:
        os.kill(process.pid, signum)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    reopened = Store.open(config.storage.data_dir)
    try:
        after = {(c.source_id, c.fingerprint()) for c in reopened.load_contacts()}
        latest = recent_runs(reopened)[0]
        assert process.returncode == 1
        assert b"Traceback" not in stderr
        assert after == before
        assert latest.outcome == "error"
        assert latest.error == (f"The sync was stopped by {signal.Signals(signum).name} "
                                "before it finished.")
    finally:
        reopened.close()


def test_status_shows_killed_run_interrupted(fake_google, google_config, google_sync):
    config, _, _, process = start_slow_full_sync(fake_google, google_config, google_sync)
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    status = subprocess.run(
        [sys.executable, "-m", "appliance", "status", "--runs", "1", "--config",
         str(config.path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    last_line = status.stdout.strip().splitlines()[-1]
    assert status.returncode == 0
    assert " interrupted " in last_line
    assert INTERRUPTED_ERROR in last_line
    assert " running " not in status.stdout


def test_status_shows_live_run_running(fake_google, google_config, google_sync):
    config, _, _, process = start_slow_full_sync(fake_google, google_config, google_sync)
    try:
        status = subprocess.run(
            [sys.executable, "-m", "appliance", "status", "--runs", "1", "--config",
             str(config.path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert " running " in status.stdout.strip().splitlines()[-1]
