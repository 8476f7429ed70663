"""Exception classes of the appliance, grouped by who must act on them."""

from __future__ import annotations


class ApplianceError(Exception):
    """Base class of every error the appliance raises on purpose."""


class ConfigError(ApplianceError, ValueError):
    """The admin must edit the config file or a command-line value."""


class StoreError(ApplianceError):
    """The database or the disk under it failed."""


class ImportFileError(ApplianceError, ValueError):
    """An import file cannot be read or parsed at all."""


class SyncError(ApplianceError):
    """A sync from Google failed: account, authorisation or API."""


class AuthorisationNeeded(SyncError):
    """The stored Google authorisation is missing, revoked or expired."""


class SyncTokenExpired(SyncError):
    """Google rejected the stored sync token, so a full sync is needed."""
