"""Faults: killed imports and syncs, a full disk, a read-only database, Google down
or slow, and a log folder that cannot be written.

Each test keeps an appliance serving from the same data folder while the fault
happens, and checks afterwards that the database passes ``PRAGMA integrity_check``,
contains exactly the old or the new set of contacts, never a mix, and that phones are
still served.

The full-disk tests mount a small tmpfs and the read-only tests set the immutable
attribute with ``chattr +i``, so they need root and skip with a message otherwise.
The read-only tests leave the ``-shm`` file alone: SQLite maps it into memory, and
a mapped file turned immutable kills the process with SIGBUS on its next write,
which no admin action on the database would cause.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from appliance.store import DATABASE_NAME
from tests.conftest import wait_until, write_ini
from tests.google_fixtures import fake_google, google_config  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
KILL_POINTS = 20
# Printed on failure, so a run can be repeated with FAULT_SEED=<seed> in the environment.
SEED = int(os.environ.get("FAULT_SEED", random.randrange(1 << 30)))

CSV_HEADER = ["First Name", "Last Name", "Labels", "Phone 1 - Label", "Phone 1 - Value"]


def write_contacts_csv(path: Path, prefix: str, count: int) -> set[str]:
    """Write ``count`` contacts named ``<prefix>NNNNN Tester``; return the given names."""
    names = set()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for index in range(count):
            given = f"{prefix}{index:05d}"
            names.add(given)
            writer.writerow([given, "Tester", "* myContacts", "Work",
                             f"+1 202 555 01{index % 100:02d}"])
    return names


def stored_given_names(database: Path, source: str = "import") -> set[str]:
    """Read the given names of one source's contacts through a fresh connection."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT given_name FROM contacts WHERE source = ?", (source,)).fetchall()
    finally:
        connection.close()
    return {row[0] for row in rows}


def count_contacts(database: Path, source: str) -> int:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return connection.execute(
            "SELECT count(*) FROM contacts WHERE source = ?", (source,)).fetchone()[0]
    finally:
        connection.close()


def integrity(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def run_appliance(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def start_appliance(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "appliance", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def kill_after(process: subprocess.Popen, delay_s: float) -> tuple[bool, str]:
    """SIGKILL ``process`` once ``delay_s`` has passed.

    Returns whether it was still running then, and what it wrote to stderr.
    """
    try:
        stderr, _ = process.communicate(timeout=delay_s)
        return False, stderr.decode("utf-8", errors="replace")
    except subprocess.TimeoutExpired:
        process.kill()
        stderr, _ = process.communicate(timeout=30)
        return True, stderr.decode("utf-8", errors="replace")


def assert_serves(running, names: set[str], source: str = "import") -> None:
    """Check that the running appliance serves exactly ``names`` to phones.

    One name is searched through the phone route; the whole set is compared through
    the directory's store, which the phone pages are built from.
    """
    sample = min(names)
    response = running.get("/directory/search/name", params={"q": sample})
    assert response.status_code == 200
    assert sample in response.content.decode("utf-8")
    stored = {contact.given_name for contact in running.appliance.store.load_contacts()
              if contact.source == source}
    assert stored == names


@pytest.fixture
def data_setup(tmp_path):
    """A config file on a fresh data folder, without sample contacts."""

    def make(data_dir: Path | None = None) -> Path:
        data_dir = data_dir or tmp_path / "data"
        return write_ini(tmp_path / "cli.ini", {
            "storage": {"data_dir": str(data_dir)},
            "server": {"host": "127.0.0.1", "port": "0"},
            "directory": {"sample_contacts": "no"},
        })

    return make


def needs_root(reason: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root to {reason}; run the suite as root to include this fault")


@pytest.fixture
def small_disk(tmp_path):
    """Mount a 4 MiB tmpfs and return its path; unmounted when the test ends."""
    needs_root("mount a small tmpfs as a full data disk")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill_disk(mount_point: Path, leave_bytes: int) -> None:
    """Write a filler file so that only about ``leave_bytes`` stay free."""
    free = shutil.disk_usage(mount_point).free
    with open(mount_point / "filler", "wb") as filler:
        filler.write(b"\0" * max(0, free - leave_bytes))


def database_files(data_dir: Path) -> list[Path]:
    """Return the database file and, when present, its WAL file, which the read-only
    tests lock."""
    names = (DATABASE_NAME, f"{DATABASE_NAME}-wal")
    return [data_dir / name for name in names if (data_dir / name).exists()]


def set_immutable(paths: list[Path], on: bool) -> None:
    flag = "+i" if on else "-i"
    result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot set the immutable attribute here: {result.stderr.strip()}")


# -- import killed at random points ---------------------------------------------------


def test_import_killed_keeps_old_or_new(tmp_path, data_setup, serve, make_config):
    config_path = data_setup()
    sets = {"old": tmp_path / "alpha.csv", "new": tmp_path / "bravo.csv"}
    names = {"old": write_contacts_csv(sets["old"], "Alpha", 2000),
             "new": write_contacts_csv(sets["new"], "Bravo", 6000)}
    assert run_appliance("import", "--config", str(config_path), str(sets["old"])).returncode == 0
    running = serve(storage={"data_dir": str(tmp_path / "data")},
                    directory={"sample_contacts": "no"})
    database = tmp_path / "data" / DATABASE_NAME

    # Time one whole import so the kill points spread over all of it.
    started = time.monotonic()
    assert run_appliance("import", "--config", str(config_path), str(sets["new"])).returncode == 0
    duration_s = time.monotonic() - started
    current = "new"

    rng = random.Random(SEED)
    outcomes = []
    for point in range(KILL_POINTS):
        target = "old" if current == "new" else "new"
        delay_s = rng.uniform(0.0, duration_s)
        process = start_appliance("import", "--config", str(config_path), str(sets[target]))
        killed, stderr = kill_after(process, delay_s)

        where = f"kill point {point} at {delay_s:.3f} s (FAULT_SEED={SEED})"
        assert integrity(database) == "ok", where
        stored = stored_given_names(database)
        assert stored in (names["old"], names["new"]), where
        current = "old" if stored == names["old"] else "new"
        outcomes.append((killed, current == target))
        assert_serves(running, names[current])

    # Without a kill the import must have finished and switched sets.
    assert all(switched for killed, switched in outcomes if not killed)


# -- full disk ---------------------------------------------------------------------------


def test_import_on_full_disk_keeps_old(tmp_path, data_setup, serve, small_disk):
    data_dir = small_disk / "data"
    config_path = data_setup(data_dir)
    old_names = write_contacts_csv(tmp_path / "alpha.csv", "Alpha", 100)
    write_contacts_csv(tmp_path / "bravo.csv", "Bravo", 3000)
    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "alpha.csv")).returncode == 0
    running = serve(storage={"data_dir": str(data_dir)}, directory={"sample_contacts": "no"})

    fill_disk(small_disk, leave_bytes=48 * 1024)
    result = run_appliance("import", "--config", str(config_path), str(tmp_path / "bravo.csv"))
    assert result.returncode == 1
    assert "disk is full" in result.stderr
    assert "Traceback" not in result.stderr
    assert integrity(data_dir / DATABASE_NAME) == "ok"
    assert_serves(running, old_names)

    # With space again, the same import goes through.
    (small_disk / "filler").unlink()
    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "bravo.csv")).returncode == 0
    assert count_contacts(data_dir / DATABASE_NAME, "import") == 3000


# -- read-only database ---------------------------------------------------------------------


def test_import_into_read_only_database(tmp_path, data_setup, serve):
    needs_root("make the database immutable with chattr")
    config_path = data_setup()
    old_names = write_contacts_csv(tmp_path / "alpha.csv", "Alpha", 100)
    new_names = write_contacts_csv(tmp_path / "bravo.csv", "Bravo", 100)
    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "alpha.csv")).returncode == 0
    running = serve(storage={"data_dir": str(tmp_path / "data")},
                    directory={"sample_contacts": "no"})
    files = database_files(tmp_path / "data")
    set_immutable(files, True)
    try:
        result = run_appliance("import", "--config", str(config_path),
                               str(tmp_path / "bravo.csv"))
        assert result.returncode == 1
        assert "cannot be written" in result.stderr
        assert "Traceback" not in result.stderr
        assert_serves(running, old_names)
    finally:
        set_immutable(files, False)
    assert integrity(tmp_path / "data" / DATABASE_NAME) == "ok"

    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "bravo.csv")).returncode == 0
    assert_serves(running, new_names)


def test_serve_starts_on_read_only_database(tmp_path, data_setup, serve):
    needs_root("make the database immutable with chattr")
    config_path = data_setup()
    old_names = write_contacts_csv(tmp_path / "alpha.csv", "Alpha", 100)
    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "alpha.csv")).returncode == 0
    files = database_files(tmp_path / "data")
    set_immutable(files, True)
    try:
        running = serve(storage={"data_dir": str(tmp_path / "data")},
                        directory={"sample_contacts": "no"})
        assert_serves(running, old_names)
    finally:
        set_immutable(files, False)


# -- sync killed at random points ---------------------------------------------------------


def name_all(fake_google, prefix: str) -> set[str]:
    """Give every person of the fake Google the given name ``<prefix>NNNNN``."""
    names = set()
    for index, resource_name in enumerate(fake_google.first_resource_names(10**6)):
        given = f"{prefix}{index:05d}"
        fake_google.update_person(resource_name, given=given)
        names.add(given)
    return names


# Settings of a config that both the sync command and an in-process server use.
SERVE_SECTIONS = {"server": {"host": "127.0.0.1", "port": "0"},
                  "directory": {"sample_contacts": "no"}}


def serve_without_scheduler(serve, config):
    """Serve ``config`` with its sync scheduler stopped, so only the test syncs."""
    running = serve(config=config)
    running.appliance.sync_scheduler.stop()
    running.appliance.google_sync.stop_event.clear()  # stop() also set it for the sync
    return running


def test_sync_killed_keeps_old_or_new(fake_google, google_config, serve, tmp_path):
    for index in range(1500):
        fake_google._add_generated("connections", index)
    config = google_config(sections=SERVE_SECTIONS)
    sync_args = ("sync", "--full", "--config", str(config.path))
    names = {"old": name_all(fake_google, "Alpha")}
    assert run_appliance(*sync_args).returncode == 0
    names["new"] = name_all(fake_google, "Bravo")
    fake_google.delay_s = 0.05  # per call, so the fetch takes a while as on a real network

    started = time.monotonic()
    assert run_appliance(*sync_args).returncode == 0
    duration_s = time.monotonic() - started
    database = Path(config.storage.data_dir) / DATABASE_NAME
    running = serve_without_scheduler(serve, config)
    current = "new"

    rng = random.Random(SEED)
    for point in range(KILL_POINTS):
        target = "old" if current == "new" else "new"
        name_all(fake_google, "Alpha" if target == "old" else "Bravo")
        delay_s = rng.uniform(0.0, duration_s)
        process = start_appliance(*sync_args)
        killed, stderr = kill_after(process, delay_s)

        where = f"kill point {point} at {delay_s:.3f} s (FAULT_SEED={SEED})"
        assert integrity(database) == "ok", where
        stored = stored_given_names(database, "google")
        assert stored in (names["old"], names["new"]), where
        current = "old" if stored == names["old"] else "new"
        if not killed:
            assert process.returncode == 0, f"{where}: {stderr[-2000:]}"
            assert current == target, where
        assert_serves(running, names[current], source="google")


# -- full disk during a sync ----------------------------------------------------------------


def test_sync_on_full_disk_keeps_old(fake_google, google_config, serve, small_disk,
                                     tmp_path):
    data_dir = small_disk / "data"
    for index in range(50):
        fake_google._add_generated("connections", index)
    config = google_config(sections={**SERVE_SECTIONS, "storage": {"data_dir": str(data_dir)}})
    sync_args = ("sync", "--full", "--config", str(config.path))
    old_names = name_all(fake_google, "Alpha")
    assert run_appliance(*sync_args).returncode == 0
    running = serve_without_scheduler(serve, config)

    for index in range(50, 1500):
        fake_google._add_generated("connections", index)
    fill_disk(small_disk, leave_bytes=48 * 1024)
    result = run_appliance(*sync_args)
    assert result.returncode == 1
    assert "disk is full" in result.stderr
    assert "Traceback" not in result.stderr
    assert integrity(data_dir / DATABASE_NAME) == "ok"
    assert_serves(running, old_names, source="google")

    (small_disk / "filler").unlink()
    assert run_appliance(*sync_args).returncode == 0
    assert count_contacts(data_dir / DATABASE_NAME, "google") == 1500


# -- Google down or slow for a long time ------------------------------------------------------


def test_google_outage_keeps_directory_serving(fake_google, google_config, serve):
    for index in range(200):
        fake_google._add_generated("connections", index)
    names = name_all(fake_google, "Alpha")
    config = google_config(request_timeout_seconds="1", max_attempts="2",
                           sections=SERVE_SECTIONS)
    running = serve_without_scheduler(serve, config)
    sync = running.appliance.google_sync
    assert sync.run().outcome == "ok"

    # Down: every call fails, sync after sync.
    fake_google.add_fault("*", status=503, times=10**6)
    for _ in range(3):
        assert sync.run().outcome == "error"
    store = running.appliance.store
    assert store.get_state("sync.consecutive_failures") == "3"
    assert "503" in store.get_state("sync.last_error")
    assert_serves(running, names, source="google")

    # Down for two days: the health check fails on freshness, phones are still served.
    store.set_state("sync.last_success_at", str(int(time.time()) - 2 * 86400))
    health = running.get("/health", headers={"Accept": "application/json"})
    assert health.status_code == 503
    assert health.json()["status"] == "fail"
    assert_serves(running, names, source="google")

    # Slow: every call hangs past the timeout while phones keep getting fast responses.
    fake_google.clear_faults()
    fake_google.delay_s = 3.0
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=sync.run()))
    worker.start()
    while worker.is_alive():
        started = time.monotonic()
        assert running.get("/directory/search/name", params={"q": "Alpha"}).status_code == 200
        assert time.monotonic() - started < 1.0
        worker.join(timeout=0.1)
    assert outcome["result"].outcome == "error"
    assert "timed out" in outcome["result"].error
    assert_serves(running, names, source="google")

    # Back: the next sync succeeds and the failure count resets.
    fake_google.delay_s = 0.0
    assert sync.run().outcome == "ok"
    assert store.get_state("sync.consecutive_failures") == "0"


# -- log folder unwritable ---------------------------------------------------------------------


def test_unwritable_log_dir_keeps_serving(tmp_path, data_setup):
    needs_root("make the log folder immutable with chattr")
    logs = tmp_path / "logs"
    port = free_port()
    config_path = write_ini(tmp_path / "logs.ini", {
        "storage": {"data_dir": str(tmp_path / "data")},
        "server": {"host": "127.0.0.1", "port": str(port)},
        "logging": {"dir": str(logs), "console": "no"},
        "health": {"cache_seconds": "0"},
    })
    process = subprocess.Popen([sys.executable, "-m", "appliance", "serve", "--config",
                                str(config_path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE,
                               env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(base + "/directory") == 200, timeout_s=30)
        log_files = sorted(logs.iterdir())
        set_immutable([logs, *log_files], True)
        try:
            for _ in range(5):
                assert _status(base + "/directory") == 200
            wait_until(lambda: _log_check(base) == "warn", timeout_s=10)
            assert process.poll() is None
        finally:
            set_immutable([logs, *log_files], False)
        assert _status(base + "/directory") == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"log files cannot be written" in stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def _log_check(base: str) -> str | None:
    body = requests.get(base + "/health", headers={"Accept": "application/json"},
                        timeout=5).json()
    check = body.get("checks", {}).get("logs:writing", [{}])
    return check[0].get("status") if check else None
