"""Outer WSGI middleware: request ID, timing and the per-request hooks.

It wraps the whole Bottle app, so it sees the status the client really gets (a
Bottle after-request hook sees 200 for a request that ends in a 500).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from appliance.context import request_id as current_request_id

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

UNMATCHED_ROUTE = "unmatched"
# The route of a request refused by the rate limit before any route matched; code
# in front of the routes sets it under ENVIRON_ROUTE.
RATE_LIMITED_ROUTE = "rate_limited"
ENVIRON_ROUTE = "appliance.route"


def accept_request_id(incoming: str | None) -> str:
    """Keep a well-formed incoming request ID, else make a new UUID4."""
    if incoming and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return str(uuid.uuid4())


@dataclass
class RequestRecord:
    """Facts about one finished request, for the access log and metrics."""

    request_id: str
    method: str
    path: str
    route: str
    status: int
    duration_s: float
    bytes_sent: int
    client: str
    environ: dict[str, Any] = field(repr=False, default_factory=dict)


def route_pattern(environ: dict) -> str:
    """Return the matched Bottle route rule, a marker such as ``rate_limited`` set
    under ENVIRON_ROUTE, or ``unmatched``; never the raw path."""
    route = environ.get("bottle.route")
    if route is not None:
        return route.rule
    return environ.get(ENVIRON_ROUTE, UNMATCHED_ROUTE)


RequestHook = Callable[[RequestRecord], None]


class RequestMiddleware:
    """Give each request an ID and a timer, and report it to hooks when done.

    ``on_start`` hooks run before the app with the WSGI environ; ``on_finish``
    hooks run with a RequestRecord after the body has been produced.
    """

    def __init__(self, app: Callable, on_finish: Iterable[RequestHook] = (),
                 on_start: Iterable[Callable[[dict], None]] = ()) -> None:
        self.app = app
        self.on_finish = list(on_finish)
        self.on_start = list(on_start)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = accept_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ["appliance.request_id"] = request_id
        token = current_request_id.set(request_id)
        captured: dict[str, Any] = {"status": 500}
        try:
            for hook in self.on_start:
                hook(environ)

            def tracking_start_response(status: str, headers: list, exc_info=None):
                captured["status"] = int(status.split(" ", 1)[0])
                elapsed_ms = (time.perf_counter() - started) * 1000
                headers = [(name, value) for name, value in headers
                           if name.lower() not in ("x-request-id", "x-response-time")]
                headers.append((REQUEST_ID_HEADER, request_id))
                headers.append(("X-Response-Time", f"{elapsed_ms:.1f}ms"))
                return start_response(status, headers, exc_info)

            body = self.app(environ, tracking_start_response)
            try:
                chunks = list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            record = RequestRecord(
                request_id=request_id,
                method=environ.get("REQUEST_METHOD", "GET"),
                path=environ.get("PATH_INFO", ""),
                route=route_pattern(environ),
                status=captured["status"],
                duration_s=time.perf_counter() - started,
                bytes_sent=sum(len(chunk) for chunk in chunks),
                client=environ.get("REMOTE_ADDR", ""),
                environ=environ,
            )
            for hook in self.on_finish:
                hook(record)
            return chunks
        finally:
            current_request_id.reset(token)
