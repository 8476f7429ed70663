"""Smoke tests of the one-file binary that build/build.sh makes.

The binary is built once per test session: 26 to 53 s on a busy 2-core x86-64
machine with the build venv in place, 89 s when build.sh makes the venv anew. Set
PHONEBOOK_BINARY to a built executable to test that one instead, such as an
arm64 build on a Pi. The tests skip when PyInstaller is not installed.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from appliance import __version__
from appliance.cli import build_parser
from appliance.config import render_example_ini, setting_index
from appliance.locations import render_service_ini
from appliance.store import Store
from conftest import wait_until, write_ini
from tests.fake_google import FakeGoogle, write_demo

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "build" / "build.sh"
ARTIFACTS = REPO / "tests" / "artifacts"
BUILD_TIMEOUT_S = 1200
START_TIMEOUT_S = 30
# The service's TimeoutStopSec. A graceful stop must end well within it.
STOP_TIMEOUT_S = 30
MAX_WALK_PAGES = 400
CISCO_OBJECTS = {"CiscoIPPhoneMenu", "CiscoIPPhoneDirectory", "CiscoIPPhoneInput",
                 "CiscoIPPhoneText"}


@pytest.fixture(scope="session")
def binary(tmp_path_factory) -> Path:
    """Build dist/phonebook-appliance once per session, or use PHONEBOOK_BINARY.

    The tests run a copy taken under the build lock, because another test session
    in this checkout may rebuild dist/phonebook-appliance while these tests run.
    """
    prebuilt = os.environ.get("PHONEBOOK_BINARY")
    if prebuilt:
        path = Path(prebuilt).resolve()
        assert path.is_file(), f"PHONEBOOK_BINARY={prebuilt} is not a file"
        return path
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller not installed: pip install -r tests/requirements.txt")
    if shutil.which("objdump") is None:
        pytest.skip("objdump not found: PyInstaller needs binutils (apt-get install binutils)")

    started = time.monotonic()
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], cwd=REPO, capture_output=True,
                            text=True, timeout=BUILD_TIMEOUT_S,
                            env={**os.environ, "PYTHON": sys.executable})
    elapsed_s = time.monotonic() - started
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "binary-build.log").write_text(
        f"build/build.sh exited {result.returncode} after {elapsed_s:.1f} s\n\n"
        f"{result.stdout}\n{result.stderr}", encoding="utf-8")
    if result.returncode != 0:
        pytest.fail(f"build/build.sh failed after {elapsed_s:.0f} s:\n{result.stderr[-3000:]}")
    print(f"\nbuilt the binary in {elapsed_s:.1f} s", file=sys.stderr)
    copy = tmp_path_factory.mktemp("binary") / "phonebook-appliance"
    with open(REPO / "build" / "work" / "build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.copy2(REPO / "dist" / "phonebook-appliance", copy)
    return copy


def run_binary(binary: Path, *args: str, tmp_path: Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one command of the binary with TMPDIR in ``tmp_path``.

    A run killed at its timeout leaves its _MEI folder there, not in /tmp.
    """
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("PHONEBOOK_")}
    environment.update(env or {}, TMPDIR=str(tmpdir))
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                          env=environment)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningBinary:
    """The binary serving on 127.0.0.1, with the folder it unpacks into."""

    process: subprocess.Popen
    base_url: str
    tmpdir: Path
    output: Path
    session: requests.Session = field(default_factory=requests.Session)

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.base_url + path, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` to the bootloader and return the exit status."""
        self.process.send_signal(sig)
        return self.process.wait(timeout=STOP_TIMEOUT_S)

    def log_text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def unlimited_sections() -> dict[str, dict[str, str]]:
    """Return settings that turn off the per-client rate limit, where there is one.

    The walk and the load test send far more requests from 127.0.0.1 than a phone.
    """
    if ("phones", "rate_limit_per_second") in setting_index():
        return {"phones": {"rate_limit_per_second": "0"}}
    return {}


def write_config(folder: Path, port: int) -> Path:
    return write_ini(folder / "config.ini", {
        "server": {"host": "127.0.0.1", "port": str(port),
                   "public_base_url": f"http://127.0.0.1:{port}"},
        "storage": {"data_dir": str(folder / "data")},
        **unlimited_sections(),
    })


def start_binary(binary: Path, folder: Path) -> RunningBinary:
    """Start ``serve`` with a config in ``folder`` and wait until it is ready.

    TMPDIR points at a folder of its own, so a left-over _MEI folder is visible.
    The working directory is ``folder``, so ./logs lands there too.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmpdir = folder / "tmp"
    tmpdir.mkdir(exist_ok=True)
    port = free_port()
    config = write_config(folder, port)
    output = folder / "output.log"
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("PHONEBOOK_")}
    environment["TMPDIR"] = str(tmpdir)
    with open(output, "wb") as sink:
        process = subprocess.Popen([str(binary), "serve", "--config", str(config)], cwd=folder,
                                   env=environment, stdout=sink, stderr=subprocess.STDOUT)
    running = RunningBinary(process, f"http://127.0.0.1:{port}", tmpdir, output)
    try:
        wait_until(lambda: _is_ready(running), timeout_s=START_TIMEOUT_S, interval_s=0.05)
    except AssertionError:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(f"binary not ready in {START_TIMEOUT_S} s:\n{running.log_text()}")
    return running


def _is_ready(running: RunningBinary) -> bool:
    """Poll /readyz, or /directory in a build without /readyz."""
    if running.process.poll() is not None:
        raise AssertionError(f"binary exited with {running.process.returncode}:\n"
                             f"{running.log_text()}")
    try:
        response = running.get("/readyz", timeout=1)
        if response.status_code == 404:
            response = running.get("/directory", timeout=1)
    except requests.ConnectionError:
        return False
    return response.status_code == 200


@pytest.fixture(scope="module")
def served(binary: Path, tmp_path_factory) -> Iterator[RunningBinary]:
    """One running binary shared by the read-only checks of this module."""
    running = start_binary(binary, tmp_path_factory.mktemp("served"))
    yield running
    if running.process.poll() is None:
        running.stop()


def require_route(running: RunningBinary, path: str, **kwargs) -> requests.Response:
    """Return the response for ``path``, or skip when this build has no such route."""
    response = running.get(path, **kwargs)
    if response.status_code == 404:
        pytest.skip(f"route {path} is not in this build (404)")
    return response


def walk_directory(get, base_url: str, start: str = "/directory") -> tuple[set, int]:
    """Follow every link of the XML directory from ``start``, as a phone user would.

    Returns the (name, telephone) pairs of every DirectoryEntry and the number of
    pages fetched. Each page must be a 200 with a Cisco XML object.
    """
    entries: set[tuple[str, str]] = set()
    queue = deque([start])
    seen = {start}
    while queue:
        assert len(seen) <= MAX_WALK_PAGES, f"more than {MAX_WALK_PAGES} pages from {start}"
        path = queue.popleft()
        response = get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        root = ET.fromstring(response.content)
        assert root.tag in CISCO_OBJECTS, f"{path}: root element {root.tag}"
        for entry in root.iter("DirectoryEntry"):
            entries.add((entry.findtext("Name", ""), entry.findtext("Telephone", "")))
        for element in root.iter("URL"):
            link = _same_server_path(element.text or "", base_url)
            if link and link not in seen and root.tag != "CiscoIPPhoneInput":
                seen.add(link)
                queue.append(link)
    return entries, len(seen)


def _same_server_path(url: str, base_url: str) -> str:
    """Return the path and query of a link to ``base_url``, or "" for other links."""
    if not url.startswith(base_url + "/"):
        return ""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# ---------------------------------------------------------------------------
# The artifact itself.


@pytest.mark.parametrize("module", ["phonenumbers.geocoder", "phonenumbers.carrier",
                                    "phonenumbers.timezone"])
def test_source_avoids_unbundled_modules(module):
    # build/hooks/hook-phonenumbers.py leaves these modules out of the binary.
    users = [path.relative_to(REPO).as_posix() for path in (REPO / "appliance").rglob("*.py")
             if module in path.read_text(encoding="utf-8")]
    assert users == []


def test_binary_bundle_contents(binary):
    reader = pytest.importorskip("PyInstaller.archive.readers")
    archive = reader.CArchiveReader(str(binary))
    names = set(archive.toc)
    modules: set[str] = set()
    for name, entry in archive.toc.items():
        if entry[4] == "z":
            modules |= set(archive.open_embedded_archive(name).toc)
    assert "pythonjsonlogger.json" in modules
    assert [m for m in modules if m.split(".")[0] in ("tests", "tkinter", "pytest")] == []
    assert [n for n in names if "tkinter" in n] == []
    assert "appliance/build_info.json" in names


def test_binary_bundle_carries_package_data(binary):
    reader = pytest.importorskip("PyInstaller.archive.readers")
    names = set(reader.CArchiveReader(str(binary)).toc)
    package = REPO / "appliance"
    data_files = [path.relative_to(REPO).as_posix() for path in package.rglob("*")
                  if path.is_file() and path.suffix not in (".py", ".pyc")
                  and "__pycache__" not in path.parts]
    assert [path for path in data_files if path not in names] == []
    if (REPO / "config.example.ini").exists():
        assert "config.example.ini" in names


def test_binary_version_lists_build(binary, tmp_path):
    result = run_binary(binary, "--version", tmp_path=tmp_path)
    lines = result.stdout.splitlines()
    assert result.returncode == 0
    assert lines[0] == f"phonebook-appliance {__version__}"
    assert lines[1].startswith("build: one-file executable (PyInstaller ")
    assert "built " in lines[1]


def test_binary_help_lists_every_command(binary, tmp_path):
    result = run_binary(binary, "--help", tmp_path=tmp_path)
    source_commands = build_parser()._subparsers._group_actions[0].choices
    assert result.returncode == 0
    assert [name for name in source_commands if name not in result.stdout] == []
    assert result.stdout.startswith("usage: phonebook-appliance ")


@pytest.mark.parametrize(("args", "expected"), [
    (["init-config"], render_example_ini()),
    (["init-config", "--service"], render_service_ini()),
])
def test_binary_init_config_matches_source(binary, tmp_path, args, expected):
    result = run_binary(binary, *args, tmp_path=tmp_path)
    assert result.returncode == 0
    assert result.stdout == expected


def test_binary_check_config_names_file(binary, tmp_path):
    config = write_config(tmp_path, 8080)
    result = run_binary(binary, "check-config", "--config", str(config), tmp_path=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"config: {config} (from --config): valid"


def test_binary_check_config_uses_env(binary, tmp_path):
    config = write_config(tmp_path, 8080)
    result = run_binary(binary, "check-config", tmp_path=tmp_path,
                        env={"PHONEBOOK_CONFIG": str(config)})
    assert result.returncode == 0
    assert "(from PHONEBOOK_CONFIG)" in result.stdout


def test_binary_bad_config_exits_2(binary, tmp_path):
    config = tmp_path / "config.ini"
    config.write_text("[server]\nport = ten\n", encoding="utf-8")
    result = run_binary(binary, "check-config", "--config", str(config), tmp_path=tmp_path)
    assert result.returncode == 2
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_imports_sample_csv(binary, tmp_path):
    sample = REPO / "appliance" / "data" / "sample-contacts.csv"
    if not sample.exists():
        pytest.skip(f"{sample} is not in this checkout")
    config = write_config(tmp_path, 8080)
    result = run_binary(binary, "import", "--config", str(config), str(sample),
                        tmp_path=tmp_path)
    store = Store.open(tmp_path / "data")
    try:
        contacts = store.count_contacts()
    finally:
        store.close()
    assert result.returncode == 0, result.stderr[-2000:]
    assert contacts > 0


def test_binary_syncs_from_fake_google(binary, tmp_path):
    # Google's client libraries inside the binary, against the fake Google on 127.0.0.1.
    fake = FakeGoogle(contacts=25).start()
    try:
        config = write_demo(fake, tmp_path / "demo", 8080)
        credentials = tmp_path / "demo" / "authorized_user.json"
        authorised = run_binary(binary, "auth", "--config", str(config),
                                "--import", str(credentials), tmp_path=tmp_path)
        synced = run_binary(binary, "sync", "--config", str(config), tmp_path=tmp_path)
        status = run_binary(binary, "status", "--config", str(config), tmp_path=tmp_path)
    finally:
        fake.stop()
    store = Store.open(tmp_path / "demo" / "data")
    try:
        contacts = store.count_contacts()
    finally:
        store.close()
    assert authorised.returncode == 0, authorised.stderr[-2000:]
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert status.returncode == 0, status.stderr[-2000:]
    assert contacts == 25


# ---------------------------------------------------------------------------
# Serving.


def test_binary_readyz_answers_200(served):
    response = require_route(served, "/readyz")
    assert response.status_code == 200


def test_binary_directory_walk_finds_contacts(served):
    entries, pages = walk_directory(served.get, served.base_url)
    if pages == 1 and not entries:
        pytest.skip("route /directory serves a menu without links in this build")
    assert len(entries) > 0


def test_binary_directory_matches_source(served, serve):
    source = serve(**unlimited_sections())
    binary_entries, _ = walk_directory(served.get, served.base_url)
    source_entries, _ = walk_directory(source.get, source.base_url)
    assert binary_entries == source_entries


def test_binary_metrics_scrape(served):
    response = require_route(served, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert f'version="{__version__}"' in response.text
    assert "process_resident_memory_bytes" in response.text
    assert "phonebook_http_requests_total" in response.text


def test_binary_health_json(served):
    response = require_route(served, "/health", headers={"Accept": "application/json"})
    body = response.json()
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/health+json")
    assert body["status"] in ("pass", "warn")


def test_binary_health_page_html(served):
    response = require_route(served, "/health", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html" in response.text.lower()


# ---------------------------------------------------------------------------
# Stopping.


def test_binary_sigterm_exits_cleanly(binary, tmp_path):
    running = start_binary(binary, tmp_path)
    assert running.get("/directory").status_code == 200
    assert list(running.tmpdir.glob("_MEI*")) != []
    assert running.stop(signal.SIGTERM) == 0
    assert list(running.tmpdir.glob("_MEI*")) == []
    assert "stopped" in running.log_text()


def test_binary_sigterm_closes_database(binary, tmp_path):
    # The last connection to close folds the WAL back and removes -wal and -shm.
    running = start_binary(binary, tmp_path)
    assert running.get("/directory").status_code == 200
    assert running.stop(signal.SIGTERM) == 0
    assert sorted(path.name for path in (tmp_path / "data").glob("*.sqlite3*")) == [
        "phonebook.sqlite3"]


def test_binary_sigterm_to_whole_group(binary, tmp_path):
    # systemd's default KillMode=control-group signals the bootloader and the Python
    # process at once, so Python gets SIGTERM twice: directly and forwarded.
    running = start_binary(binary, tmp_path)
    pid = running.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1
    os.kill(int(children[0]), signal.SIGTERM)
    assert running.stop(signal.SIGTERM) == 0
    assert list(running.tmpdir.glob("_MEI*")) == []


def test_binary_sigint_exits_cleanly(binary, tmp_path):
    running = start_binary(binary, tmp_path)
    assert running.stop(signal.SIGINT) == 0
    assert list(running.tmpdir.glob("_MEI*")) == []


def test_binary_sigterm_under_load_cuts_nothing(binary, tmp_path):
    """Requests running when SIGTERM arrives get whole responses or none at all."""
    running = start_binary(binary, tmp_path)
    outcomes: list[str] = []
    stop_clients = threading.Event()

    def client() -> None:
        session = requests.Session()
        while not stop_clients.is_set():
            try:
                response = session.get(running.base_url + "/directory", timeout=10)
                outcomes.append("ok" if response.status_code == 200 else
                                f"status {response.status_code}")
            except requests.exceptions.ChunkedEncodingError:
                outcomes.append("truncated")
            except requests.ConnectionError:
                outcomes.append("refused")

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    wait_until(lambda: outcomes.count("ok") >= 40, timeout_s=20)
    exit_status = running.stop(signal.SIGTERM)
    stop_clients.set()
    for thread in clients:
        thread.join(timeout=15)
    assert exit_status == 0
    assert [outcome for outcome in outcomes if outcome not in ("ok", "refused")] == []
    assert list(running.tmpdir.glob("_MEI*")) == []
