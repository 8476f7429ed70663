"""Google authorisation: the three ways in, and the credentials file.

1. A Desktop OAuth client with a loopback redirect and PKCE. Google sends the
   browser to ``http://127.0.0.1:PORT/?code=...`` on the admin's own machine,
   where nothing answers; the admin pastes that address into /setup or into
   ``python -m appliance auth``, and the appliance exchanges the code.
2. ``python -m appliance auth --import FILE``: authorised-user credentials made
   elsewhere (for example by ``gcloud auth application-default login``).
3. Google Workspace: a service-account key with domain-wide delegation, acting as
   ``[google] subject``.

Google's device flow cannot be used, because it does not allow contact scopes,
and the copy-paste "oob" redirect was withdrawn in 2023.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import google.auth.credentials
import google.auth.exceptions
import google.oauth2.credentials
import google.oauth2.service_account
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from appliance.config import Config
from appliance.errors import AuthorisationNeeded, ConfigError, SyncError

logger = logging.getLogger(__name__)

SCOPE_CONTACTS = "https://www.googleapis.com/auth/contacts.readonly"
SCOPE_OTHER_CONTACTS = "https://www.googleapis.com/auth/contacts.other.readonly"
SCOPE_DIRECTORY = "https://www.googleapis.com/auth/directory.readonly"

CREDENTIALS_NAME = "google-credentials.json"
# How long a consent link stays usable; Google's authorisation codes themselves
# live for minutes, so an older pending consent is of no use.
CONSENT_LIFETIME_S = 15 * 60
# Loopback ports for the redirect: Google accepts any port on 127.0.0.1 for a
# Desktop client, and a random high port is unlikely to reach a local service
# on the admin's machine.
_REDIRECT_PORTS = (49152, 65535)


def required_scopes(config: Config) -> list[str]:
    """Return the OAuth scopes the enabled sources need."""
    scopes = [SCOPE_CONTACTS]
    if config.google.other_contacts:
        scopes.append(SCOPE_OTHER_CONTACTS)
    if config.google.workspace_directory:
        scopes.append(SCOPE_DIRECTORY)
    return scopes


def credentials_path(config: Config) -> Path:
    """Return where the OAuth credentials file lives."""
    if config.google.credentials is not None:
        return config.google.credentials
    return Path(config.storage.data_dir) / CREDENTIALS_NAME


def uses_service_account(config: Config) -> bool:
    return config.google.service_account_key is not None


def is_configured(config: Config) -> bool:
    """Tell whether any authorisation path is set up, so a sync can be attempted."""
    return (uses_service_account(config) or config.google.client_secrets is not None
            or credentials_path(config).exists())


# ---------------------------------------------------------------------------
# The credentials file.


def save_credentials(path: Path, credentials: google.oauth2.credentials.Credentials) -> None:
    """Write OAuth credentials atomically with mode 0600.

    The file is written under a temporary name in the same folder, flushed to
    disk and renamed over the old one, so a crash leaves the old file or the new.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    payload = credentials.to_json()
    descriptor, temporary = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(descriptor)


def _read_json(path: Path, what: str, fix: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found: {fix}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{what} {path} cannot be read: {error}. {fix}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{what} {path} is not valid JSON ({error.msg} at line "
                          f"{error.lineno}): {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} is not a JSON object: {fix}")
    return data


def parse_authorised_user(info: dict[str, Any], source: str,
                          config: Config) -> google.oauth2.credentials.Credentials:
    """Build OAuth credentials from an authorised-user JSON object.

    ``from_authorized_user_info`` always sets Google's own token endpoint, so the
    configured ``[google] token_uri`` is applied afterwards.
    """
    kind = info.get("type", "authorized_user")
    if kind != "authorized_user":
        hint = (" For a service account key, set [google] service_account_key instead."
                if kind == "service_account" else "")
        raise ConfigError(f"{source} contains credentials of type {kind!r}, expected "
                          f"'authorized_user'.{hint}")
    missing = [key for key in ("refresh_token", "client_id", "client_secret")
               if not info.get(key)]
    if missing:
        raise ConfigError(f"{source} lacks {', '.join(missing)}: export the credentials "
                          "again with a refresh token, or authorise through /setup.")
    try:
        credentials = google.oauth2.credentials.Credentials.from_authorized_user_info(info)
    except ValueError as error:
        raise ConfigError(f"{source} cannot be read as Google credentials: {error}.") from None
    return credentials.with_token_uri(config.google.token_uri)


def load_credentials(config: Config) -> google.auth.credentials.Credentials:
    """Load the credentials of the configured path, service account first.

    Raises AuthorisationNeeded when no authorisation exists yet, and ConfigError
    when a file is unreadable.
    """
    if uses_service_account(config):
        return _load_service_account(config)
    path = credentials_path(config)
    if not path.exists():
        raise AuthorisationNeeded(
            "No Google authorisation yet: open /setup and follow the consent link, or run "
            "'python -m appliance auth'.")
    info = _read_json(path, "Credentials file", "authorise again through /setup.")
    return parse_authorised_user(info, f"Credentials file {path}", config)


def _load_service_account(config: Config) -> google.oauth2.service_account.Credentials:
    key_path = config.google.service_account_key
    if not config.google.subject:
        raise ConfigError(
            f"[google] service_account_key is set ({key_path}) but [google] subject is "
            "empty: set subject to the Workspace user whose contacts to read.")
    info = _read_json(key_path, "Service account key", "download a new JSON key in "
                      "Google Cloud Console and set [google] service_account_key to it.")
    try:
        credentials = google.oauth2.service_account.Credentials.from_service_account_info(
            info, scopes=required_scopes(config))
    except (ValueError, KeyError) as error:
        raise ConfigError(f"Service account key {key_path} cannot be used: {error}. "
                          "Download a new JSON key in Google Cloud Console.") from None
    credentials = credentials.with_subject(config.google.subject)
    return credentials.with_token_uri(config.google.token_uri)


def import_authorised_user(config: Config, source: Path) -> Path:
    """Copy authorised-user credentials from ``source`` into the credentials file."""
    info = _read_json(source, "Credentials file", "give a JSON file of type "
                      "'authorized_user' with a refresh token.")
    credentials = parse_authorised_user(info, f"Credentials file {source}", config)
    target = credentials_path(config)
    save_credentials(target, credentials)
    logger.info("google credentials imported", extra={"path": str(target)})
    return target


def describe_refresh_error(error: google.auth.exceptions.RefreshError) -> tuple[str, bool]:
    """Return a safe one-line reason and whether it means new authorisation is needed.

    The OAuth error code (``invalid_grant``, ``unauthorized_client``) is kept; the
    rest of Google's answer is dropped because it may echo request values.
    """
    code = ""
    if len(error.args) > 1 and isinstance(error.args[1], dict):
        code = str(error.args[1].get("error", ""))
    elif error.args:
        code = str(error.args[0]).split(":", 1)[0].strip()
    if code == "invalid_grant":
        return ("Google rejected the stored authorisation (invalid_grant): it was revoked, "
                "expired, or the OAuth app is still in Testing. Authorise again on /setup."), True
    if code in ("unauthorized_client", "invalid_client", "access_denied"):
        return (f"Google rejected the client ({code}): check the OAuth client, or for a "
                "service account its domain-wide delegation and scopes."), True
    if getattr(error, "retryable", False):
        return "Google's token endpoint failed for now; the next sync tries again.", False
    return "Google's token endpoint rejected the refresh of the access token.", False


# ---------------------------------------------------------------------------
# Consent with a loopback redirect and PKCE.


@dataclass
class PendingConsent:
    """A consent link handed out and the values needed to finish it."""

    url: str
    state: str
    redirect_uri: str
    code_verifier: str
    created: float = field(default_factory=time.monotonic)

    @property
    def is_expired(self) -> bool:
        return time.monotonic() - self.created > CONSENT_LIFETIME_S


def load_client_config(config: Config) -> dict[str, Any]:
    """Read the OAuth client file and point it at the configured endpoints."""
    path = config.google.client_secrets
    if path is None:
        raise ConfigError(
            "[google] client_secrets is not set: download the Desktop app OAuth client "
            "from Google Cloud Console (APIs & Services, Credentials) and set "
            "client_secrets to its path.")
    data = _read_json(path, "OAuth client file", "download it again from Google Cloud "
                      "Console (APIs & Services, Credentials, Desktop app).")
    # Only Desktop app clients may redirect to any port on 127.0.0.1; a Web
    # application client needs every redirect address registered in advance.
    if "installed" not in data:
        raise ConfigError(f"OAuth client file {path} is not a Desktop app client: create "
                          "an OAuth client of type 'Desktop app' and download its JSON.")
    client = dict(data["installed"])
    missing = [key for key in ("client_id", "client_secret") if not client.get(key)]
    if missing:
        raise ConfigError(f"OAuth client file {path} lacks {', '.join(missing)}: download "
                          "it again from Google Cloud Console.")
    client["auth_uri"] = config.google.auth_uri
    client["token_uri"] = config.google.token_uri
    return {"installed": client}


def start_consent(config: Config) -> PendingConsent:
    """Make a consent link with a fresh PKCE verifier, state and loopback port."""
    port = secrets.randbelow(_REDIRECT_PORTS[1] - _REDIRECT_PORTS[0]) + _REDIRECT_PORTS[0]
    redirect_uri = f"http://127.0.0.1:{port}/"
    flow = Flow.from_client_config(load_client_config(config), scopes=required_scopes(config),
                                   redirect_uri=redirect_uri)
    # prompt=consent makes Google return a refresh token even to an account that
    # granted access before.
    with _oauthlib_guard(config.google.auth_uri):
        url, state = flow.authorization_url(access_type="offline", prompt="consent")
    return PendingConsent(url=url, state=state, redirect_uri=redirect_uri,
                          code_verifier=flow.code_verifier)


# An authorisation code pasted on its own: at least 10 URL-safe characters, no spaces.
_BARE_CODE = re.compile(r"[A-Za-z0-9/_.~-]{10,}")


def parse_redirect(pasted: str) -> tuple[str, str | None]:
    """Return ``(code, state)`` from the pasted redirect address, or a bare code.

    Raises SyncError when Google's redirect carries an error or no code.
    """
    text = pasted.strip()
    if not text:
        raise SyncError("Nothing was pasted: paste the whole address from the browser's "
                        "address bar after consent, starting with http://127.0.0.1.")
    if "://" not in text and "code=" not in text:
        if not _BARE_CODE.fullmatch(text):
            raise SyncError(
                "The pasted text is neither an address nor an authorisation code: paste "
                "the whole address from the browser's address bar after consent, starting "
                "with http://127.0.0.1 and containing code=.")
        return text, None  # a bare authorisation code
    query = urlsplit(text).query if "://" in text else text.lstrip("?")
    values = parse_qs(query)
    if "error" in values:
        error = values["error"][0]
        raise SyncError(f"Google did not grant access ({error}): open the consent link "
                        "again and choose Allow.")
    if "code" not in values:
        raise SyncError("The pasted address has no code= part: copy the whole address "
                        "from the address bar after consent.")
    return values["code"][0], values.get("state", [None])[0]


_OAUTHLIB_LOCK = threading.Lock()
# requests_oauthlib logs tokens, codes and request bodies at DEBUG
# (requests-oauthlib 2.0.0), so its loggers stay above DEBUG during an exchange.
_QUIET_LOGGERS = ("requests_oauthlib", "oauthlib")


@contextmanager
def _oauthlib_guard(url: str) -> Iterator[None]:
    """Let oauthlib reach a loopback test server, accept extra scopes, and log no secrets.

    oauthlib reads these switches only from the environment. Plain http is
    allowed only when ``url`` is http, which the config check permits on loopback
    alone. Extra granted scopes are checked by the caller, so oauthlib's own
    scope check is relaxed.
    """
    names = ["OAUTHLIB_RELAX_TOKEN_SCOPE"]
    if url.startswith("http://"):
        names.append("OAUTHLIB_INSECURE_TRANSPORT")
    with _OAUTHLIB_LOCK:
        saved = {name: os.environ.get(name) for name in names}
        levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
        os.environ.update({name: "1" for name in names})
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def finish_consent(config: Config, pending: PendingConsent, pasted: str) -> Path:
    """Exchange the code from the pasted redirect and store the credentials.

    Raises SyncError with a message for the admin when the state does not match,
    the code is refused, or contacts access was not granted.
    """
    code, state = parse_redirect(pasted)
    if state is not None and not secrets.compare_digest(state, pending.state):
        raise SyncError("The pasted address belongs to another consent link: use the "
                        "address from the most recent link.")
    flow = Flow.from_client_config(load_client_config(config), scopes=required_scopes(config),
                                   redirect_uri=pending.redirect_uri, state=pending.state,
                                   code_verifier=pending.code_verifier)
    try:
        with _oauthlib_guard(config.google.token_uri):
            flow.fetch_token(code=code)
    except OAuth2Error as error:
        raise SyncError(f"Google rejected the authorisation code ({error.error}): codes work "
                        "once and for a few minutes, so open the consent link again.") from None
    except (OSError, ValueError) as error:
        raise SyncError(f"The token exchange with {config.google.token_uri} failed: "
                        f"{type(error).__name__}. Check the network and try again.") from None

    credentials = flow.credentials
    granted = set(credentials.granted_scopes or credentials.scopes or ())
    if granted and SCOPE_CONTACTS not in granted:
        raise SyncError("Access to contacts was not granted: open the consent link again and "
                        "tick 'See and download your contacts'.")
    if not credentials.refresh_token:
        raise SyncError("Google returned no refresh token: remove the appliance's access at "
                        "myaccount.google.com/permissions and open a new consent link.")
    target = credentials_path(config)
    save_credentials(target, credentials)
    logger.info("google authorisation stored", extra={"path": str(target)})
    return target
