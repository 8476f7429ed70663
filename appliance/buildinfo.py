"""Version and build details, for ``--version`` and the logs.

The one-file binary carries ``appliance/build_info.json``, written by
``build/build.sh`` with the commit, build date and PyInstaller version. Run from
a source checkout, the commit is read from the checkout's ``.git`` folder.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from appliance import __version__

BUILD_INFO_FILE = "build_info.json"


@dataclass(frozen=True)
class BuildInfo:
    """Version, build details and runtime of the running program."""

    version: str
    is_frozen: bool
    commit: str = ""
    build_date: str = ""
    pyinstaller: str = ""
    python: str = field(default_factory=platform.python_version)
    platform: str = field(default_factory=lambda: f"{platform.system()} {platform.machine()}")


def get_build_info() -> BuildInfo:
    """Read the build details of the running program; missing details stay empty."""
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        details = _read_bundled_details(Path(bundle) / "appliance" / BUILD_INFO_FILE)
        return BuildInfo(version=__version__, is_frozen=True,
                         commit=details.get("commit", ""),
                         build_date=details.get("build_date", ""),
                         pyinstaller=details.get("pyinstaller", ""))
    checkout = Path(__file__).resolve().parents[1]
    return BuildInfo(version=__version__, is_frozen=False,
                     commit=read_git_commit(checkout / ".git"))


def _read_bundled_details(path: Path) -> dict[str, str]:
    try:
        details = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(details, dict):
        return {}
    return {key: str(value) for key, value in details.items()}


def read_git_commit(git_dir: Path) -> str:
    """Return the first 12 hex digits of the checked-out commit, or "" when unknown.

    Reads the files git keeps (HEAD, the branch ref, packed-refs) instead of running
    git, which may not be installed on the box.
    """
    try:
        head = (git_dir / "HEAD").read_text(encoding="ascii").strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[len("ref: "):]
        ref_file = git_dir / ref
        if ref_file.is_file():
            return ref_file.read_text(encoding="ascii").strip()[:12]
        for line in (git_dir / "packed-refs").read_text(encoding="ascii").splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit[:12]
    except (OSError, UnicodeDecodeError):
        return ""
    return ""


def render_version_text(info: BuildInfo | None = None) -> str:
    """Render the ``--version`` text: the version line, then build and runtime lines."""
    info = info or get_build_info()
    if info.is_frozen:
        build = "one-file executable"
        if info.pyinstaller:
            build += f" (PyInstaller {info.pyinstaller})"
    else:
        build = "run from source"
    if info.commit:
        build += f", commit {info.commit}"
    if info.build_date:
        build += f", built {info.build_date}"
    return "\n".join([
        f"phonebook-appliance {info.version}",
        f"build: {build}",
        f"runtime: Python {info.python}, {info.platform}",
    ])
