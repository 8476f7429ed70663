"""Config file search order, the service config, and the CLI commands built on them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config import load_config, setting_index
from appliance.errors import ConfigError
from appliance.locations import (
    CONFIG_ENV,
    SERVICE_DATA_DIR,
    SERVICE_LOG_DIR,
    find_config,
    render_service_ini,
)


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """Config files in each place of the search order, all present."""
    folders = {name: tmp_path / name for name in ("option", "env", "system", "cwd")}
    for folder in folders.values():
        folder.mkdir()
        (folder / "config.ini").write_text("[server]\nport = 8080\n", encoding="utf-8")
    return {name: folder / "config.ini" for name, folder in folders.items()}


def _search(places: dict[str, Path], *, option: bool = True, env: bool = True,
            system: bool = True, cwd: bool = True):
    """Run the search with the config files of the places switched off removed."""
    for name, present in (("option", option), ("env", env), ("system", system), ("cwd", cwd)):
        if not present:
            places[name].unlink()
    environ = {CONFIG_ENV: str(places["env"])} if env else {}
    return find_config(places["option"] if option else None, environ,
                       system_config=places["system"], cwd=places["cwd"].parent)


@pytest.mark.parametrize(("present", "expected", "origin"), [
    ({"option": True}, "option", "--config"),
    ({"option": False}, "env", CONFIG_ENV),
    ({"option": False, "env": False}, "system", "the system location"),
    ({"option": False, "env": False, "system": False}, "cwd", "the working directory"),
])
def test_find_config_search_order(places, present, expected, origin):
    choice = _search(places, **present)
    assert choice.path == places[expected]
    assert choice.origin == origin


def test_find_config_none_gives_defaults(tmp_path):
    choice = find_config(None, {}, system_config=tmp_path / "absent.ini", cwd=tmp_path)
    assert choice.path is None
    assert "embedded defaults" in choice.describe()


def test_find_config_blank_env_is_ignored(tmp_path):
    choice = find_config(None, {CONFIG_ENV: "  "}, system_config=tmp_path / "absent.ini",
                         cwd=tmp_path)
    assert choice.path is None


@pytest.mark.parametrize(("option", "env", "names"), [
    ("missing.ini", "", "the --config option"),
    (None, "missing.ini", f"the {CONFIG_ENV} environment variable"),
])
def test_find_config_missing_file_names_source(tmp_path, option, env, names):
    option_path = tmp_path / option if option else None
    environ = {CONFIG_ENV: str(tmp_path / env)} if env else {}
    with pytest.raises(ConfigError) as caught:
        find_config(option_path, environ, system_config=tmp_path / "absent.ini", cwd=tmp_path)
    assert names in str(caught.value)
    assert "missing.ini" in str(caught.value)


@pytest.mark.parametrize(("is_frozen", "command"), [
    (False, "python -m appliance init-config"),
    (True, "phonebook-appliance init-config"),
])
def test_find_config_missing_suggests_own_command(tmp_path, monkeypatch, is_frozen,
                                                  command):
    monkeypatch.setattr(sys, "frozen", is_frozen, raising=False)
    with pytest.raises(ConfigError) as caught:
        find_config(tmp_path / "missing.ini", {}, system_config=tmp_path / "absent.ini",
                    cwd=tmp_path)
    assert command in str(caught.value)


def test_find_config_folder_is_rejected(tmp_path):
    with pytest.raises(ConfigError) as caught:
        find_config(tmp_path, {}, system_config=tmp_path / "absent.ini", cwd=tmp_path)
    assert "is a folder" in str(caught.value)


def test_service_ini_sets_service_folders(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(render_service_ini(), encoding="utf-8")
    config = load_config(path)
    assert config.storage.data_dir == SERVICE_DATA_DIR
    if ("logging", "dir") in setting_index():
        assert config.logging.dir == SERVICE_LOG_DIR


def test_service_ini_sets_only_service_keys(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(render_service_ini(), encoding="utf-8")
    config = load_config(path)
    explicit = {where for where in setting_index() if config.is_set(*where)}
    assert explicit <= {("storage", "data_dir"), ("logging", "dir")}


def test_cli_init_config_prints_example(capsys):
    from appliance.config import render_example_ini

    assert main(["init-config"]) == 0
    assert capsys.readouterr().out == render_example_ini()


def test_cli_init_config_ignores_broken_config(tmp_path, monkeypatch, capsys):
    (tmp_path / "config.ini").write_text("[nonsense\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["init-config", "--service"]) == 0
    assert capsys.readouterr().out == render_service_ini()


def test_cli_check_config_names_env_file(places, monkeypatch, capsys):
    monkeypatch.setenv(CONFIG_ENV, str(places["env"]))
    assert main(["check-config"]) == 0
    output = capsys.readouterr().out
    assert str(places["env"]) in output
    assert CONFIG_ENV in output


def test_cli_check_config_reads_working_dir(places, monkeypatch, capsys):
    monkeypatch.chdir(places["cwd"].parent)
    # A config file at the real system location would take precedence.
    if Path("/etc/phonebook-appliance/config.ini").exists():
        pytest.skip("/etc/phonebook-appliance/config.ini exists on this machine")
    assert main(["check-config"]) == 0
    assert "the working directory" in capsys.readouterr().out


def test_cli_missing_env_config_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "absent.ini"))
    assert main(["check-config"]) == 2
    assert CONFIG_ENV in capsys.readouterr().err
