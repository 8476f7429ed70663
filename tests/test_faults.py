"""Faults: killed imports, a full disk and a read-only database.

Each test keeps an appliance serving from the same data folder while the fault
happens, and checks afterwards that the database passes ``PRAGMA integrity_check``,
holds exactly the old or the new set of contacts, never a mix, and that phones are
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
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.store import DATABASE_NAME
from conftest import write_ini

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


def stored_given_names(database: Path) -> set[str]:
    """Read the imported contacts' given names through a fresh connection."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT given_name FROM contacts WHERE source = 'import'").fetchall()
    finally:
        connection.close()
    return {row[0] for row in rows}


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
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def kill_after(process: subprocess.Popen, delay_s: float) -> bool:
    """SIGKILL ``process`` once ``delay_s`` has passed; return whether it was still running."""
    try:
        process.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
        return True


def assert_serves(running, names: set[str]) -> None:
    """Check that the served directory has one of ``names`` and answers phones."""
    response = running.get("/directory")
    assert response.status_code == 200
    stored = {contact.given_name for contact in running.appliance.store.load_contacts()
              if contact.source == "import"}
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
    """Mount a 1 MiB tmpfs and return its path; unmounted when the test ends."""
    needs_root("mount a small tmpfs as a full data disk")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def database_files(data_dir: Path) -> list[Path]:
    """Return the database file and its WAL file, which the read-only tests lock."""
    return [data_dir / DATABASE_NAME, data_dir / f"{DATABASE_NAME}-wal"]


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
        killed = kill_after(process, delay_s)

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
    write_contacts_csv(tmp_path / "huge.csv", "Bravo", 20000)
    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "alpha.csv")).returncode == 0
    running = serve(storage={"data_dir": str(data_dir)}, directory={"sample_contacts": "no"})

    result = run_appliance("import", "--config", str(config_path), str(tmp_path / "huge.csv"))
    assert result.returncode == 1
    assert "disk is full" in result.stderr
    assert "Traceback" not in result.stderr
    assert integrity(data_dir / DATABASE_NAME) == "ok"
    assert_serves(running, old_names)

    # With space again, the same import goes through.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert run_appliance("import", "--config", str(config_path),
                         str(tmp_path / "huge.csv")).returncode == 0
    assert len(stored_given_names(data_dir / DATABASE_NAME)) == 20000


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
