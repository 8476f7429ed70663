"""build/install.sh into a temporary root: files, modes, unit content, uninstall.

The installed "binary" is a launcher that runs this checkout with the test
interpreter, so install.sh's calls to ``--version`` and ``init-config`` run the
real code without a PyInstaller build.
"""

from __future__ import annotations

import configparser
import inspect
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.locations import SERVICE_DATA_DIR, SERVICE_LOG_DIR
from appliance.server import Server

REPO = Path(__file__).resolve().parents[1]
INSTALL_SH = REPO / "build" / "install.sh"
UNIT_NAME = "phonebook-appliance.service"

# Installed path (below the root) and its expected mode.
INSTALLED_MODES = [
    ("usr/local/bin/phonebook-appliance", 0o755),
    ("etc/systemd/system/phonebook-appliance.service", 0o644),
    ("etc/sysusers.d/phonebook-appliance.conf", 0o644),
    ("etc/phonebook-appliance", 0o750),
    ("etc/phonebook-appliance/config.ini", 0o640),
    ("etc/phonebook-appliance/config.example.ini", 0o644),
    ("var/lib/phonebook-appliance", 0o700),
    ("var/lib/phonebook-appliance/tmp", 0o700),
    ("var/log/phonebook-appliance", 0o700),
]
# What --uninstall removes, and what it keeps unless --purge is given.
PROGRAM_FILES = [
    "usr/local/bin/phonebook-appliance",
    "etc/systemd/system/phonebook-appliance.service",
    "etc/sysusers.d/phonebook-appliance.conf",
    "usr/local/share/doc/phonebook-appliance",
]
KEPT_FOLDERS = [
    "etc/phonebook-appliance",
    "var/lib/phonebook-appliance",
    "var/log/phonebook-appliance",
]


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """An executable that runs ``python -m appliance`` from this checkout."""
    path = tmp_path / "phonebook-appliance"
    path.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="{REPO}" exec "{sys.executable}" -m appliance "$@"\n',
        encoding="utf-8")
    path.chmod(0o755)
    return path


def run_install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("DESTDIR", "PHONEBOOK_CONFIG")}
    environment.update(env or {})
    return subprocess.run(["bash", str(INSTALL_SH), *args], capture_output=True, text=True,
                          env=environment, timeout=60)


@pytest.fixture
def installed(tmp_path: Path, launcher: Path) -> Path:
    """A root folder that install.sh has installed into."""
    root = tmp_path / "root"
    result = run_install("--root", str(root), "--binary", str(launcher))
    assert result.returncode == 0, result.stderr
    return root


def read_unit(root: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read(root / "etc/systemd/system" / UNIT_NAME, encoding="utf-8")
    return parser


@pytest.mark.parametrize(("relative", "mode"), INSTALLED_MODES)
def test_install_file_modes(installed, relative, mode):
    path = installed / relative
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_install_binary_is_a_copy(installed, launcher):
    installed_binary = installed / "usr/local/bin/phonebook-appliance"
    assert installed_binary.read_bytes() == launcher.read_bytes()


def test_install_docs_when_present(installed):
    assert (installed / "usr/local/share/doc/phonebook-appliance/install.md").is_file() == (
        REPO / "docs" / "install.md").is_file()


def test_install_config_uses_service_folders(installed):
    config = load_config(installed / "etc/phonebook-appliance/config.ini")
    assert config.storage.data_dir == SERVICE_DATA_DIR


def test_install_example_config_is_valid(installed):
    config = load_config(installed / "etc/phonebook-appliance/config.example.ini")
    assert config.storage.data_dir == Path("./data")


def test_install_sysusers_matches_unit_user(installed):
    line = (installed / "etc/sysusers.d/phonebook-appliance.conf").read_text().split()
    assert line[:2] == ["u", read_unit(installed)["Service"]["User"]]


def test_install_keeps_edited_config(installed, launcher):
    config_path = installed / "etc/phonebook-appliance/config.ini"
    config_path.write_text("[server]\nport = 9090\n", encoding="utf-8")
    result = run_install("--root", str(installed), "--binary", str(launcher))
    assert result.returncode == 0, result.stderr
    assert config_path.read_text(encoding="utf-8") == "[server]\nport = 9090\n"


def test_install_destdir_same_as_root(tmp_path, launcher):
    root = tmp_path / "destdir"
    result = run_install("--binary", str(launcher), env={"DESTDIR": str(root)})
    assert result.returncode == 0, result.stderr
    assert (root / "usr/local/bin/phonebook-appliance").is_file()


def test_unit_runs_installed_paths(installed):
    service = read_unit(installed)["Service"]
    assert service["ExecStart"].split() == [
        "/usr/local/bin/phonebook-appliance", "serve",
        "--config", "/etc/phonebook-appliance/config.ini"]


@pytest.mark.parametrize(("key", "value"), [
    ("User", "phonebook"),
    ("Restart", "on-failure"),
    ("ProtectSystem", "strict"),
    ("NoNewPrivileges", "yes"),
    ("PrivateTmp", "yes"),
    ("KillSignal", "SIGTERM"),
    ("StateDirectory", "phonebook-appliance phonebook-appliance/tmp"),
    ("LogsDirectory", "phonebook-appliance"),
    ("Environment", f"TMPDIR={SERVICE_DATA_DIR}/tmp"),
])
def test_unit_service_setting(installed, key, value):
    assert read_unit(installed)["Service"][key] == value


def test_unit_writes_only_own_folders(installed):
    writable = read_unit(installed)["Service"]["ReadWritePaths"].split()
    assert writable == [str(SERVICE_DATA_DIR), str(SERVICE_LOG_DIR)]


def test_unit_tmpdir_under_state_dir(installed):
    tmpdir = Path(read_unit(installed)["Service"]["Environment"].split("=", 1)[1])
    assert tmpdir.parent == SERVICE_DATA_DIR


def test_unit_stop_timeout_exceeds_grace(installed):
    # A stop waits up to grace_s for requests in flight, then up to grace_s more
    # for the worker threads. systemd must not send SIGKILL before both are over.
    grace_s = inspect.signature(Server.__init__).parameters["grace_s"].default
    timeout_s = int(read_unit(installed)["Service"]["TimeoutStopSec"])
    assert timeout_s > 2 * grace_s


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd)")
def test_unit_passes_systemd_security_check(installed):
    # --threshold=20 fails the command when the exposure level is above 2.0 of 10.
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20",
         f"--root={installed}", UNIT_NAME],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Unknown" not in result.stderr
    assert "ignoring" not in result.stderr


def test_uninstall_removes_program_keeps_data(installed):
    result = run_install("--uninstall", "--root", str(installed))
    assert result.returncode == 0, result.stderr
    assert [path for path in PROGRAM_FILES if (installed / path).exists()] == []
    assert [path for path in KEPT_FOLDERS if not (installed / path).exists()] == []


def test_uninstall_purge_removes_everything(installed):
    result = run_install("--uninstall", "--purge", "--root", str(installed))
    assert result.returncode == 0, result.stderr
    leftovers = [path for path in PROGRAM_FILES + KEPT_FOLDERS if (installed / path).exists()]
    assert leftovers == []


def test_install_missing_binary_fails(tmp_path):
    result = run_install("--root", str(tmp_path / "root"), "--binary", str(tmp_path / "absent"))
    assert result.returncode == 1
    assert "absent not found" in result.stderr


def test_install_unrunnable_binary_fails(tmp_path):
    broken = tmp_path / "phonebook-appliance"
    broken.write_bytes(b"\x7fELF not really a program")
    broken.chmod(0o755)
    result = run_install("--root", str(tmp_path / "root"), "--binary", str(broken))
    assert result.returncode == 1
    assert "does not run on this machine" in result.stderr
    assert not (tmp_path / "root/usr/local/bin/phonebook-appliance").exists()


@pytest.mark.parametrize("args", [["--bogus"], ["--purge"], ["--root"]])
def test_install_bad_options_fail(tmp_path, args):
    result = run_install(*args)
    assert result.returncode == 1
    assert result.stderr.startswith("install.sh: ")
