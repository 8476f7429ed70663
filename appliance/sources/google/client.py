"""A small People API client over google-auth's ``AuthorizedSession``.

googleapiclient is not used: its bundled discovery files would add megabytes to
the one-file binary, and the sync needs only four list methods. Every call has a
timeout, 429 and 5xx answers are retried with exponential backoff and jitter
(``Retry-After`` wins when Google sends it), and a 401 refreshes the access
token once. Refreshed credentials are written back to disk at once, because
Google may rotate the refresh token.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import google.auth.credentials
import google.auth.exceptions
import google.oauth2.credentials
import requests
from google.auth.transport.requests import AuthorizedSession, Request

from appliance import __version__
from appliance.config import Config
from appliance.errors import AuthorisationNeeded, SyncError, SyncTokenExpired
from appliance.events import Events
from appliance.sources.google.auth import describe_refresh_error, save_credentials

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
EXPIRED_SYNC_TOKEN = "EXPIRED_SYNC_TOKEN"
# displayName and formattedType are localised by Google; a fixed language keeps
# the stored names and number types stable whatever the account's language.
ACCEPT_LANGUAGE = "en"


class Stopped(SyncError):
    """The appliance is stopping, so a retry wait was cut short."""


@dataclass
class Page:
    """One page of a list method, as decoded JSON."""

    items: list[dict[str, Any]]
    next_page_token: str | None
    next_sync_token: str | None
    total: int | None


class PeopleClient:
    """Call People API list methods with retries, timeouts and token refresh.

    ``sleep`` waits for the given seconds and returns True when the wait was cut
    short because the appliance is stopping (``threading.Event.wait`` fits).
    """

    def __init__(self, credentials: google.auth.credentials.Credentials, config: Config,
                 events: Events, request_id: str, credentials_file=None,
                 sleep: Callable[[float], bool] | None = None) -> None:
        settings = config.google
        self.api_root = settings.api_root.rstrip("/") + "/"
        self.timeout_s = settings.request_timeout_seconds
        self.max_attempts = settings.max_attempts
        self.base_delay_s = settings.retry_base_delay_seconds
        self.max_delay_s = settings.retry_max_delay_seconds
        self.credentials = credentials
        self.credentials_file = credentials_file
        self.events = events
        self._sleep = sleep or threading.Event().wait
        self._random = random.Random()
        self._auth_session = requests.Session()
        self._auth_session.headers["X-Request-ID"] = request_id
        self._auth_request = Request(self._auth_session)
        # The session must not refresh on its own: _refresh counts, records and
        # persists every refresh, and a 401 is retried exactly once.
        self.session = AuthorizedSession(credentials, refresh_status_codes=(),
                                         auth_request=self._auth_request)
        self.session.headers.update({
            "X-Request-ID": request_id,
            "Accept-Language": ACCEPT_LANGUAGE,
            "User-Agent": f"phonebook-appliance/{__version__}",
        })

    def close(self) -> None:
        self.session.close()
        self._auth_session.close()

    # -- paging -----------------------------------------------------------------

    def list_pages(self, method: str, path: str, params: dict[str, Any],
                   item_key: str) -> Iterator[Page]:
        """Yield every page of a list method, following ``nextPageToken``."""
        page_token = None
        while True:
            query = dict(params)
            if page_token:
                query["pageToken"] = page_token
            data = self.call(method, path, query)
            items = data.get(item_key) or []
            if not isinstance(items, list):
                raise SyncError(f"Google answered {method} with '{item_key}' that is not a "
                                "list; the next sync tries again.")
            total = data.get("totalItems", data.get("totalSize"))
            page = Page(items=items, next_page_token=data.get("nextPageToken") or None,
                        next_sync_token=data.get("nextSyncToken") or None,
                        total=total if isinstance(total, int) else None)
            yield page
            if page.next_page_token is None:
                return
            page_token = page.next_page_token

    # -- one call ---------------------------------------------------------------

    def call(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET one API method and return its JSON, retrying what is worth retrying.

        Raises SyncTokenExpired, AuthorisationNeeded or SyncError.
        """
        url = self.api_root + path.lstrip("/")
        refreshed_after_401 = False
        attempt = 1
        last_problem = ""
        while True:
            self._ensure_valid_token()
            response, problem = self._send(method, url, params)
            if response is not None and response.status_code == 200:
                data = _decode_json(response)
                if data is not None:
                    return data
                problem = "malformed"
            elif response is not None and response.status_code == 401 and not refreshed_after_401:
                refreshed_after_401 = True
                self._refresh()
                continue
            elif response is not None:
                self._raise_for_final_status(method, response)
            last_problem = problem
            if attempt >= self.max_attempts:
                break
            delay = self._retry_delay(attempt, response)
            self.events.emit("google.retry", method=method, reason=problem)
            logger.warning("google call retried", extra={
                "method": method, "reason": problem, "attempt": attempt, "delay_s": round(delay, 3)})
            if self._sleep(delay):
                raise Stopped("The sync was stopped because the appliance is stopping.")
            attempt += 1
        raise SyncError(f"Google People API {method} failed after {attempt} attempts "
                        f"(last: {_describe_problem(last_problem)}); the next sync tries again.")

    def _send(self, method: str, url: str,
              params: dict[str, Any]) -> tuple[requests.Response | None, str]:
        started = time.monotonic()
        try:
            response = self.session.get(url, params=params,
                                        timeout=(self.timeout_s, self.timeout_s))
        except requests.Timeout:
            self._emit_call(method, 0, started)
            return None, "timeout"
        except requests.RequestException as error:
            self._emit_call(method, 0, started)
            logger.debug("google call failed", extra={"method": method,
                                                     "error": type(error).__name__})
            return None, "connection"
        except google.auth.exceptions.RefreshError as error:
            self._refresh_failed(error)
        self._emit_call(method, response.status_code, started)
        return response, str(response.status_code)

    def _emit_call(self, method: str, status: int, started: float) -> None:
        self.events.emit("google.call", method=method, status=status,
                         duration_s=time.monotonic() - started)

    def _raise_for_final_status(self, method: str, response: requests.Response) -> None:
        """Raise for a status that is not retried; return for one that is."""
        status = response.status_code
        if status in RETRY_STATUSES:
            return
        error = _error_body(response)
        if status in (400, 410) and EXPIRED_SYNC_TOKEN in _reasons(error, response):
            raise SyncTokenExpired(f"Google reports the sync token of {method} as expired.")
        message = _safe_message(error)
        if status == 401:
            raise AuthorisationNeeded(
                "Google rejected a freshly refreshed access token (401): authorise again "
                "on /setup.")
        if status == 403:
            raise SyncError(f"Google rejected {method} (403: {message}). Check that the People "
                            "API is enabled for the OAuth client's project and that the "
                            "authorisation includes the scopes of the enabled sources.")
        raise SyncError(f"Google answered {method} with HTTP {status} ({message}).")

    def _retry_delay(self, attempt: int, response: requests.Response | None) -> float:
        retry_after = _retry_after_s(response) if response is not None else None
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        ceiling = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        # Half fixed, half random: spreads appliances that failed together.
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    # -- tokens -------------------------------------------------------------------

    def _ensure_valid_token(self) -> None:
        if not self.credentials.valid:
            self._refresh()

    def _refresh(self) -> None:
        try:
            self.credentials.refresh(self._auth_request)
        except google.auth.exceptions.RefreshError as error:
            self._refresh_failed(error)
        except google.auth.exceptions.TransportError as error:
            self.events.emit("google.token_refresh", outcome="error")
            raise SyncError(f"Google's token endpoint could not be reached "
                            f"({type(error).__name__}); the next sync tries again.") from None
        self.events.emit("google.token_refresh", outcome="ok")
        if self.credentials_file is not None and isinstance(
                self.credentials, google.oauth2.credentials.Credentials):
            save_credentials(self.credentials_file, self.credentials)

    def _refresh_failed(self, error: google.auth.exceptions.RefreshError) -> None:
        self.events.emit("google.token_refresh", outcome="error")
        reason, needs_authorisation = describe_refresh_error(error)
        if needs_authorisation:
            raise AuthorisationNeeded(reason) from None
        raise SyncError(reason) from None


def _decode_json(response: requests.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _error_body(response: requests.Response) -> dict[str, Any]:
    data = _decode_json(response)
    error = data.get("error") if data else None
    return error if isinstance(error, dict) else {}


def _reasons(error: dict[str, Any], response: requests.Response) -> set[str]:
    """Collect ``reason`` values from a Google error body, wherever they sit."""
    reasons = set()
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            reasons.add(str(detail["reason"]))
    for item in error.get("errors") or []:
        if isinstance(item, dict) and item.get("reason"):
            reasons.add(str(item["reason"]))
    # Some answers carry only the text "Sync token is expired".
    if "sync token is expired" in str(error.get("message", "")).lower():
        reasons.add(EXPIRED_SYNC_TOKEN)
    if not error and EXPIRED_SYNC_TOKEN in response.text[:2000]:
        reasons.add(EXPIRED_SYNC_TOKEN)
    return reasons


def _safe_message(error: dict[str, Any]) -> str:
    status = str(error.get("status") or "")
    message = " ".join(str(error.get("message") or "").split())[:200]
    return ": ".join(part for part in (status, message) if part) or "no details"


def _retry_after_s(response: requests.Response) -> float | None:
    """Read ``Retry-After`` as seconds or as an HTTP date; None when absent or bad."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe_problem(problem: str) -> str:
    if problem.isdigit():
        return f"HTTP {problem}"
    return {"timeout": "timed out", "connection": "connection failed",
            "malformed": "malformed JSON"}.get(problem, problem or "unknown")


def encode_params(params: dict[str, Any]) -> str:
    """Return a stable text form of request parameters, for the sync token fingerprint."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))
