"""The /metrics route, with access by network and an optional bearer token.

The body comes from prometheus-client's WSGI app, which picks the OpenMetrics or
text format from the Accept header, gzips when the client accepts it and filters
by ``name[]`` query parameters.
"""

from __future__ import annotations

import hmac
import logging
import threading
from typing import TYPE_CHECKING, Iterable

import bottle
from prometheus_client import make_wsgi_app

from appliance.web.access import Network, is_allowed, parse_client_address

if TYPE_CHECKING:
    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)

# Each rejected client is logged once. Past this many clients the rest go
# unlogged, so a scan of the whole network cannot grow memory or flood the log.
_MAX_LOGGED_CLIENTS = 256


def has_token(authorization: str, token: str) -> bool:
    """Compare a ``Bearer`` Authorization header with the token in constant time."""
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        presented = ""
    return hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8"))


class MetricsAccess:
    """Decide who may read /metrics and log each rejected client once."""

    def __init__(self, allow: Iterable[Network], token: str) -> None:
        self.allow = tuple(allow)
        self.token = token
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def check(self, remote_addr: str, authorization: str) -> tuple[int, str]:
        """Return (HTTP status, reason): 200 to serve, 403 or 401 to reject."""
        if not is_allowed(parse_client_address(remote_addr), self.allow):
            self._log_rejection(remote_addr, "network not allowed")
            return 403, "network not allowed"
        if self.token and not has_token(authorization, self.token):
            reason = "token missing" if not authorization else "token invalid"
            self._log_rejection(remote_addr, reason)
            return 401, reason
        return 200, ""

    def _log_rejection(self, remote_addr: str, reason: str) -> None:
        key = (remote_addr, reason)
        with self._lock:
            if key in self._logged or len(self._logged) >= _MAX_LOGGED_CLIENTS:
                return
            self._logged.add(key)
        logger.warning("metrics request rejected", extra={"client": remote_addr,
                                                          "reason": reason})


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    """Add /metrics to the app."""
    exposition = make_wsgi_app(appliance.metrics.registry)
    access = MetricsAccess(appliance.config.metrics.allow,
                           appliance.config.metrics.bearer_token)

    @app.route("/metrics", method=["GET", "OPTIONS"])
    def metrics():
        environ = bottle.request.environ
        status, reason = access.check(environ.get("REMOTE_ADDR", ""),
                                      environ.get("HTTP_AUTHORIZATION", ""))
        if status == 403:
            return bottle.HTTPResponse(
                "forbidden: this address may not read /metrics\n", status=403,
                headers={"Content-Type": "text/plain; charset=utf-8"})
        if status == 401:
            return bottle.HTTPResponse(
                f"unauthorized: {reason}; send 'Authorization: Bearer <token>'\n",
                status=401, headers={"Content-Type": "text/plain; charset=utf-8",
                                     "WWW-Authenticate": 'Bearer realm="metrics"'})
        captured: dict = {}

        def start_response(status_line: str, headers: list, exc_info=None) -> None:
            captured["status"] = status_line
            captured["headers"] = headers

        # prometheus-client answers HEAD with 405; Bottle drops the body of a
        # HEAD response, so serving it as GET gives the right headers.
        if environ.get("REQUEST_METHOD") == "HEAD":
            environ = {**environ, "REQUEST_METHOD": "GET"}
        body = b"".join(exposition(environ, start_response))
        logger.debug("metrics scraped", extra={"bytes": len(body)})
        response = bottle.HTTPResponse(body, status=captured["status"])
        for name, value in captured["headers"]:
            response.set_header(name, value)
        return response
