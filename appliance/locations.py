"""Config file search order, and the data and log folders of the service.

The config file is the first of: the ``--config`` option, the ``PHONEBOOK_CONFIG``
environment variable, ``/etc/phonebook-appliance/config.ini``, ``./config.ini``.
With none of them the embedded defaults apply.

Run by hand, the defaults keep data and logs in ``./data`` and ``./logs``. Run as
a service, the config file that ``init-config --service`` writes (and
``build/install.sh`` installs) sets them to ``/var/lib/phonebook-appliance`` and
``/var/log/phonebook-appliance``. The service case is recognised only through that
file, so the same binary behaves the same way under systemd and in a shell.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from appliance.config import render_example_ini, setting_index
from appliance.errors import ConfigError

CONFIG_ENV = "PHONEBOOK_CONFIG"
SYSTEM_CONFIG = Path("/etc/phonebook-appliance/config.ini")
LOCAL_CONFIG = Path("config.ini")

SERVICE_DATA_DIR = Path("/var/lib/phonebook-appliance")
SERVICE_LOG_DIR = Path("/var/log/phonebook-appliance")
# Settings that the service config file sets explicitly. A key that the settings
# table does not have (yet) is left out of the file.
SERVICE_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("storage", "data_dir", str(SERVICE_DATA_DIR)),
    ("logging", "dir", str(SERVICE_LOG_DIR)),
)
# A key line of the example config, such as "#data_dir = ./data" or "#token =".
_COMMENTED_KEY = re.compile(r"#([A-Za-z0-9_]+) =(?: |$)")


def command_name() -> str:
    """Return how the admin starts this program: the binary's name, or python -m."""
    return "phonebook-appliance" if getattr(sys, "frozen", False) else "python -m appliance"


@dataclass(frozen=True)
class ConfigChoice:
    """The config file chosen by the search order, or None for the embedded defaults."""

    path: Path | None
    origin: str

    def describe(self) -> str:
        """Return the file and the reason it was chosen, for messages and logs."""
        if self.path is None:
            return "embedded defaults (no config file found)"
        return f"{self.path} (from {self.origin})"


def find_config(option: Path | None = None, environ: Mapping[str, str] | None = None,
                system_config: Path = SYSTEM_CONFIG, cwd: Path | None = None) -> ConfigChoice:
    """Choose the config file by the search order in the module docstring.

    A file named by ``--config`` or ``PHONEBOOK_CONFIG`` must exist: ConfigError
    names it and where it came from. The other places are skipped when absent.
    """
    environ = os.environ if environ is None else environ
    if option is not None:
        return ConfigChoice(_existing(option, "the --config option"), "--config")

    from_env = environ.get(CONFIG_ENV, "").strip()
    if from_env:
        path = Path(os.path.expanduser(from_env))
        return ConfigChoice(_existing(path, f"the {CONFIG_ENV} environment variable"),
                            CONFIG_ENV)

    if system_config.is_file():
        return ConfigChoice(system_config, "the system location")
    local = (cwd or Path.cwd()) / LOCAL_CONFIG
    if local.is_file():
        return ConfigChoice(local, "the working directory")
    return ConfigChoice(None, "embedded defaults")


def _existing(path: Path, given_by: str) -> Path:
    if not path.exists():
        raise ConfigError(
            f"Config file {path}, given by {given_by}, not found. Fix the path, or "
            f"write a new file with: {command_name()} init-config > config.ini"
        )
    if path.is_dir():
        raise ConfigError(
            f"Config file {path}, given by {given_by}, is a folder. "
            "Name the ini file inside it, such as config.ini."
        )
    return path


def render_service_ini() -> str:
    """Render the example config with the service's data and log folders set.

    Each key in SERVICE_SETTINGS that the settings table has is uncommented with
    the service value; everything else stays commented out at its default.
    """
    known = setting_index()
    service_values = {(section, key): value for section, key, value in SERVICE_SETTINGS
              if (section, key) in known}
    lines = []
    section = ""
    for line in render_example_ini().splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        commented = _COMMENTED_KEY.match(line)
        key = commented.group(1) if commented else ""
        if (section, key) in service_values:
            line = f"{key} = {service_values.pop((section, key))}"
        lines.append(line)
    header = [
        "# Written for the systemd service (phonebook-appliance init-config --service):",
        "# data and logs live under /var/lib and /var/log instead of ./data and ./logs.",
    ]
    return "\n".join(header + lines) + "\n"
