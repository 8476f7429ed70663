"""Version text and the build details behind it."""

from __future__ import annotations

import pytest

from appliance import __version__
from appliance.buildinfo import BuildInfo, get_build_info, read_git_commit, render_version_text
from appliance.cli import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(("files", "expected"), [
    ({"HEAD": COMMIT + "\n"}, COMMIT[:12]),
    ({"HEAD": "ref: refs/heads/main\n", "refs/heads/main": COMMIT + "\n"}, COMMIT[:12]),
    ({"HEAD": "ref: refs/heads/main\n",
      "packed-refs": f"# pack-refs with: peeled\n{COMMIT} refs/heads/main\n"}, COMMIT[:12]),
    ({"HEAD": "ref: refs/heads/main\n"}, ""),
    ({}, ""),
])
def test_read_git_commit_cases(tmp_path, files, expected):
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="ascii")
    assert read_git_commit(tmp_path) == expected


def test_version_text_frozen_lists_build():
    info = BuildInfo(version="1.2.3", is_frozen=True, commit="abc123", pyinstaller="6.22.3",
                     build_date="2026-01-02T03:04:05Z", python="3.11.7", platform="Linux aarch64")
    assert render_version_text(info).splitlines() == [
        "phonebook-appliance 1.2.3",
        "build: one-file executable (PyInstaller 6.22.3), commit abc123, built 2026-01-02T03:04:05Z",
        "runtime: Python 3.11.7, Linux aarch64",
    ]


def test_version_text_source_without_commit():
    info = BuildInfo(version="1.2.3", is_frozen=False, python="3.11.7", platform="Linux x86_64")
    assert render_version_text(info).splitlines()[1] == "build: run from source"


def test_build_info_from_source_not_frozen():
    info = get_build_info()
    assert info.version == __version__
    assert info.is_frozen is False


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_cli_version_first_line(argv, capsys):
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"phonebook-appliance {__version__}"
