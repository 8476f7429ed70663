"""The command line as the README shows it: the command table and where --config goes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from appliance.cli import build_parser, main, render_command_table
from conftest import write_ini

README = Path(__file__).resolve().parents[1] / "README.md"


def subcommand_names(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def test_readme_command_table_matches_parser():
    readme = README.read_text(encoding="utf-8")
    assert render_command_table() in readme, "run: .venv/bin/python docs/generate.py"


@pytest.mark.parametrize("name", subcommand_names(build_parser()))
def test_readme_lists_every_subcommand(name):
    assert f"| `{name}" in render_command_table()
    assert f"| `{name}" in README.read_text(encoding="utf-8")


def test_command_table_rows_per_token_action():
    table = render_command_table()
    for row in ("| `token create NAME` |", "| `token list` |", "| `token revoke ID` |",
                "| `import PATH` |"):
        assert row in table


@pytest.mark.parametrize("argv", [
    ["--config", "{ini}", "check-config"],
    ["check-config", "--config", "{ini}"],
    ["--config", "{ini}", "check-config", "--config", "{ini}"],
])
def test_config_option_either_side_of_command(tmp_path, capsys, argv):
    ini = write_ini(tmp_path / "config.ini", {"server": {"port": "9090"}})
    status = main([item.format(ini=ini) for item in argv])
    assert status == 0
    assert f"config: {ini} (from --config): valid" in capsys.readouterr().out


def test_config_option_twice_differently_rejected(tmp_path, capsys):
    first = write_ini(tmp_path / "first.ini", {"server": {"port": "9090"}})
    second = write_ini(tmp_path / "second.ini", {"server": {"port": "9091"}})
    status = main(["--config", str(first), "check-config", "--config", str(second)])
    assert status == 2
    assert "--config is given twice" in capsys.readouterr().err
