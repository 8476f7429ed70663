"""File permissions: private folders and files, and secret files nobody else may read.

The database holds the company's contacts and the credentials file a Google refresh
token, so both are for the appliance's own user only. The process runs with umask
077, which gives every file and folder it creates mode 0600 or 0700 (the database's
WAL and shared-memory files, logs, temporary files), and the helpers here set those
modes explicitly where a file or folder is made on purpose.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from appliance.config import SETTINGS, Config
from appliance.errors import ConfigError

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def use_private_umask() -> int:
    """Make files this process creates private to its user; return the old umask."""
    return os.umask(PRIVATE_UMASK)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700 on the folder itself.

    An existing folder keeps its mode, because the admin chose it.
    """
    path = Path(path)
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)


def secret_files(config: Config) -> list[tuple[Path, str]]:
    """Return (path, setting) for each configured file that contains a secret."""
    # Imported here: the Google client libraries add about 0.5 s to every command.
    from appliance.sources.google.auth import credentials_path

    files = [(credentials_path(config), "[google] credentials")]
    if config.google.service_account_key:
        files.append((Path(config.google.service_account_key), "[google] service_account_key"))
    return files


def check_secret_files(config: Config) -> None:
    """Raise ConfigError when a secret file that exists is open to other users.

    Any permission bit for the group or for others counts, read or write: a readable
    file gives away the secret, a writable one lets another user swap it.
    """
    for path, setting in secret_files(config):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise ConfigError(
                f"Secret file {path} ({setting}) cannot be checked: "
                f"{error.strerror or error}.") from None
        if mode & 0o077:
            raise ConfigError(
                f"Secret file {path} ({setting}) has mode {mode:04o}, so other users may "
                f"read or change it. Run: chmod 600 {path}, then start the appliance again.")


def warn_if_config_readable(config: Config) -> None:
    """Log one WARNING when the config file contains a secret and others may read it."""
    secrets_set = [s for s in SETTINGS if s.secret and config.is_set(s.section, s.key)]
    if config.path is None or not secrets_set:
        return
    try:
        mode = stat.S_IMODE(config.path.stat().st_mode)
    except OSError:
        return
    if mode & 0o004:
        logger.warning("config file readable by every user", extra={
            "config": str(config.path), "mode": f"{mode:04o}",
            "hint": f"it holds a password hash or token: run chmod 640 {config.path} "
                    "and give the group to the appliance's user"})

