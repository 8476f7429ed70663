"""Who may use which route: network allow lists, phone tokens and a rate limit.

``AccessControl`` wraps the Bottle app inside the request middleware, so a refused
request still gets a request ID, an access log line and its metrics. Paths fall into
four families:

- admin pages (``/setup``, ``/admin``, ``/login``, ``/logout``, ``/debug``): the
  client must be in ``[admin] allow``; the login and its lockout do the rest;
- health endpoints (``/health``, ``/livez``, ``/readyz``): the client must be in
  ``[health] allow``;
- ``/metrics``: passed through untouched, because the metrics route checks
  ``[metrics] allow`` and the bearer token itself;
- everything else is a phone path (the directory, ``/lookup`` and unknown paths):
  the client must be in ``[phones] allow``, within the rate limit, and carry a live
  token when ``[phones] require_token`` is on.

The client address is waitress's ``REMOTE_ADDR``. Waitress replaces it with the
X-Forwarded-For address only when the request comes from ``[server] trusted_proxy``
and strips forwarding headers from everyone else, so a client cannot pick its own
address.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from typing import Callable, Iterable
from urllib.parse import unquote_plus

import bottle

from appliance.config import Config
from appliance.tokens import PhoneTokens
from appliance.web.errors import render_error, status_line
from appliance.web.middleware import ENVIRON_ROUTE, RATE_LIMITED_ROUTE

logger = logging.getLogger(__name__)

PHONE = "phone"
ADMIN = "admin"
HEALTH = "health"
OWN_RULES = "own-rules"

ADMIN_PREFIXES = ("/setup", "/admin", "/login", "/logout", "/debug")
HEALTH_PREFIXES = ("/health", "/livez", "/readyz")
OWN_RULE_PREFIXES = ("/metrics",)

TOKEN_PARAMETER = "token"
# WSGI environ keys set for the routes behind this middleware.
ENVIRON_TOKEN = "appliance.phone_token"
ENVIRON_CLIENT = "appliance.client_address"

# A refused client is logged at WARNING at most once per this many seconds, and at
# DEBUG in between, so a scanner cannot flood the log. The access log still has
# one line per request.
DENIAL_LOG_INTERVAL_S = 600.0
MAX_TRACKED_CLIENTS = 10_000

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def classify_path(path: str) -> str:
    """Return the access family of a request path: PHONE, ADMIN, HEALTH or OWN_RULES."""
    for family, prefixes in ((OWN_RULES, OWN_RULE_PREFIXES), (HEALTH, HEALTH_PREFIXES),
                             (ADMIN, ADMIN_PREFIXES)):
        if any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes):
            return family
    return PHONE


def parse_client_address(text: str | None) -> Address | None:
    """Parse a REMOTE_ADDR value; an IPv4-mapped IPv6 address becomes IPv4."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_allowed(address: Address | None, networks: Iterable[Network]) -> bool:
    """Tell whether ``address`` lies in one of ``networks``; None never does."""
    if address is None:
        return False
    return any(address.version == network.version and address in network
               for network in networks)


def rate_limit_key(address: Address) -> str:
    """Return the rate-limit bucket of an address: itself, or its /64 for IPv6.

    One IPv6 host usually owns a whole /64, so counting single addresses would let
    it dodge the limit by changing address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, ``rate_per_s`` on average.

    At most ``max_clients`` buckets are kept; the least recently seen client is
    dropped first, and on its return it starts with a full bucket.
    """

    def __init__(self, rate_per_s: float, burst: int, max_clients: int = MAX_TRACKED_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def is_enabled(self) -> bool:
        return self.rate_per_s > 0

    def take(self, key: str) -> float:
        """Spend one request of ``key``'s bucket; return 0, or the seconds to wait."""
        if not self.is_enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * self.rate_per_s)
            if tokens >= 1.0:
                tokens -= 1.0
                wait_s = 0.0
            else:
                wait_s = (1.0 - tokens) / self.rate_per_s
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait_s


class _DenialLog:
    """Log a refused client at WARNING once per interval, and at DEBUG otherwise."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, message: str, client: str, reason: str, **fields) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.pop((client, reason), None)
            is_new = last is None or now - last >= DENIAL_LOG_INTERVAL_S
            self._last[(client, reason)] = now if is_new else last
            while len(self._last) > MAX_TRACKED_CLIENTS:
                self._last.popitem(last=False)
        level = logging.WARNING if is_new else logging.DEBUG
        logger.log(level, message, extra={"client": client, "reason": reason, **fields})


def repair_header_values(environ: dict) -> None:
    """Replace bytes that are not UTF-8 in request headers with U+FFFD.

    WSGI passes header bytes as Latin-1 text, and Bottle decodes them as UTF-8 on
    every read, raising UnicodeDecodeError for other bytes. Repairing them here
    keeps one odd header from failing any route.
    """
    for key, value in environ.items():
        if not key.startswith("HTTP_") or not isinstance(value, str) or value.isascii():
            continue
        raw = value.encode("latin-1", errors="replace")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            repaired = raw.decode("utf-8", errors="replace").encode("utf-8")
            environ[key] = repaired.decode("latin-1")


def is_parsable_content_type(content_type: str) -> bool:
    """Tell whether Bottle can parse a Content-Type header when it reads a form.

    Bottle 0.13.4 raises ValueError from its header parser for a parameter with no
    ``=`` (such as ``text/plain; x``), which would fail the request with a 500.
    """
    if not content_type:
        return True
    try:
        return bool(bottle._parse_http_header(content_type))
    except (ValueError, IndexError):
        return False


def split_token(query_string: str) -> tuple[str, str]:
    """Return the first ``token`` value and the query string without any token.

    The other parameters keep their bytes as sent: a phone on a Latin-1 locale
    sends ``%E9`` for é, and decoding and encoding again would turn it into U+FFFD.
    """
    token = ""
    kept: list[str] = []
    found = False
    for part in re.split(r"[&;]", query_string):
        name, _, value = part.partition("=")
        if unquote_plus(name) == TOKEN_PARAMETER:
            if not found:
                token, found = unquote_plus(value), True
        elif part:
            kept.append(part)
    if not found:
        return "", query_string
    return token, "&".join(kept)


# Sent with every admin page: no framing (clickjacking), no scripts or outside
# resources, forms post only here, no Referer with tokens in it, no caching.
ADMIN_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                "img-src data:; form-action 'self'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


def _with_admin_headers(start_response: Callable) -> Callable:
    def start(status: str, headers: list, exc_info=None):
        present = {name.lower() for name, _ in headers}
        headers = list(headers) + [(name, value) for name, value in ADMIN_HEADERS
                                   if name.lower() not in present]
        return start_response(status, headers, exc_info)

    return start


class AccessControl:
    """WSGI middleware that applies the network, rate-limit and token rules."""

    def __init__(self, app: Callable, config: Config, tokens: PhoneTokens | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.phone_networks = tuple(config.phones.allow)
        self.admin_networks = tuple(config.admin.allow)
        self.health_networks = tuple(config.health.allow)
        self.require_token = config.phones.require_token
        self.tokens = tokens
        self.limiter = RateLimiter(config.phones.rate_limit_per_second,
                                   config.phones.rate_limit_burst, clock=clock)
        self._denials = _DenialLog(clock)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        repair_header_values(environ)
        if not is_parsable_content_type(environ.get("CONTENT_TYPE", "")):
            return self._refuse(environ, start_response, 400,
                                "The Content-Type header of the request is malformed.")
        family = classify_path(environ.get("PATH_INFO", "") or "/")
        if family == OWN_RULES:
            return self.app(environ, start_response)
        address = parse_client_address(environ.get("REMOTE_ADDR"))
        client = str(address) if address is not None else "unknown"
        environ[ENVIRON_CLIENT] = client
        if family == ADMIN:
            if not is_allowed(address, self.admin_networks):
                self._denials.record("admin request refused", client, "network")
                return self._refuse(environ, start_response, 403,
                                    "This address may not use the admin pages.")
            return self.app(environ, _with_admin_headers(start_response))
        if family == HEALTH:
            if not is_allowed(address, self.health_networks):
                self._denials.record("health request refused", client, "network")
                return self._refuse(environ, start_response, 403,
                                    "This address may not read the health endpoints.")
            return self.app(environ, start_response)
        return self._phone(environ, start_response, address, client)

    def _phone(self, environ: dict, start_response: Callable, address: Address | None,
               client: str) -> Iterable[bytes]:
        if not is_allowed(address, self.phone_networks):
            self._denials.record("phone request refused", client, "network")
            return self._refuse(environ, start_response, 403,
                                "Access denied: this address may not use the directory.")

        wait_s = self.limiter.take(rate_limit_key(address))
        if wait_s > 0:
            self._denials.record("phone request refused", client, "rate limit")
            environ[ENVIRON_ROUTE] = RATE_LIMITED_ROUTE
            retry_after = str(max(1, math.ceil(wait_s)))
            return self._refuse(environ, start_response, 429,
                                "Too many requests. Wait a moment, then try again.",
                                [("Retry-After", retry_after)])

        token, rest = split_token(environ.get("QUERY_STRING", ""))
        if token or self.require_token:
            # The token leaves the query string so no later code can log it.
            environ["QUERY_STRING"] = rest
            if not self._accept_token(environ, token, client):
                return self._refuse(environ, start_response, 403,
                                    "Access denied: this phone needs a valid directory "
                                    "token. Ask the administrator for one.")
        return self.app(environ, start_response)

    def _accept_token(self, environ: dict, token: str, client: str) -> bool:
        """Check a token and note its use; return whether the request may go on."""
        if self.tokens is None:
            return not self.require_token
        token_id, reason = self.tokens.check(token)
        if token_id is None:
            if self.require_token:
                self._denials.record("phone token refused", client, reason)
                return False
            return True  # tokens are optional here: a bad one is dropped, not refused
        self.tokens.note_use(token_id, client)
        environ[ENVIRON_TOKEN] = token
        return True

    def _refuse(self, environ: dict, start_response: Callable, status: int, message: str,
                headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        content_type, body = render_error(environ, status, message)
        response_headers = [("Content-Type", content_type),
                            ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")] + (headers or [])
        start_response(status_line(status), response_headers)
        return [body]
