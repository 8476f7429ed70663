"""File modes: private data, secret files that others may read, the umask."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.errors import ConfigError
from appliance.filemodes import (
    check_secret_files,
    make_private_dir,
    use_private_umask,
    warn_if_config_readable,
)
from appliance.store import Store

ROOT = Path(__file__).resolve().parents[1]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """Run with umask 022, as a shell usually has, and restore the old one."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_store_creates_private_files(tmp_path, open_umask):
    store = Store.open(tmp_path / "data")
    store.set_state("probe", "1")
    try:
        assert mode_of(tmp_path / "data") == 0o700
        assert mode_of(store.path) == 0o600
        assert mode_of(Path(f"{store.path}-wal")) == 0o600
    finally:
        store.close()


def test_make_private_dir_creates_0700(tmp_path, open_umask):
    make_private_dir(tmp_path / "logs" / "app")
    assert mode_of(tmp_path / "logs" / "app") == 0o700


def test_make_private_dir_keeps_existing_mode(tmp_path, open_umask):
    folder = tmp_path / "logs"
    folder.mkdir(mode=0o750)
    make_private_dir(folder)
    assert mode_of(folder) == 0o750


def test_private_umask_makes_files_0600(tmp_path, open_umask):
    old = use_private_umask()
    try:
        (tmp_path / "new.txt").write_text("x")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "new.txt") == 0o600


def config_with_credentials(tmp_path, mode: int):
    credentials = tmp_path / "credentials.json"
    credentials.write_text("{}")
    os.chmod(credentials, mode)
    ini = tmp_path / "config.ini"
    ini.write_text(f"[storage]\ndata_dir = {tmp_path / 'data'}\n"
                   f"[google]\ncredentials = {credentials}\n")
    return load_config(ini), credentials


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_secret_file_open_to_others_rejected(tmp_path, mode):
    config, credentials = config_with_credentials(tmp_path, mode)
    with pytest.raises(ConfigError) as raised:
        check_secret_files(config)
    assert f"chmod 600 {credentials}" in str(raised.value)
    assert f"{mode:04o}" in str(raised.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_secret_file_private_accepted(tmp_path, mode):
    config, _ = config_with_credentials(tmp_path, mode)
    check_secret_files(config)


def test_secret_file_default_path_checked(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "google-credentials.json").write_text("{}")
    os.chmod(data / "google-credentials.json", 0o644)
    config = load_config(None, overrides={("storage", "data_dir"): str(data)})
    with pytest.raises(ConfigError):
        check_secret_files(config)


def test_service_account_key_checked(tmp_path):
    key = tmp_path / "key.json"
    key.write_text("{}")
    os.chmod(key, 0o644)
    config = load_config(None, overrides={("storage", "data_dir"): str(tmp_path / "data"),
                                          ("google", "service_account_key"): str(key)})
    with pytest.raises(ConfigError) as raised:
        check_secret_files(config)
    assert "service_account_key" in str(raised.value)


def test_missing_secret_file_accepted(tmp_path):
    config = load_config(None, overrides={("storage", "data_dir"): str(tmp_path / "data")})
    check_secret_files(config)


def test_serve_refuses_readable_credentials(tmp_path):
    _, credentials = config_with_credentials(tmp_path, 0o644)
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "serve", "--config", str(tmp_path / "config.ini")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"chmod 600 {credentials}" in result.stderr
    assert "Traceback" not in result.stderr


def test_readable_config_with_secret_warns(tmp_path, caplog):
    ini = tmp_path / "config.ini"
    ini.write_text("[metrics]\nbearer_token = 0123456789abcdef0123\n")
    os.chmod(ini, 0o644)
    with caplog.at_level(logging.WARNING, logger="appliance.filemodes"):
        warn_if_config_readable(load_config(ini))
    assert "config file readable by every user" in caplog.text
    assert "0123456789abcdef0123" not in caplog.text


def test_private_config_with_secret_quiet(tmp_path, caplog):
    ini = tmp_path / "config.ini"
    ini.write_text("[metrics]\nbearer_token = 0123456789abcdef0123\n")
    os.chmod(ini, 0o640)
    with caplog.at_level(logging.WARNING, logger="appliance.filemodes"):
        warn_if_config_readable(load_config(ini))
    assert caplog.text == ""
