"""Error pages for every status the app returns, and the boundary that logs crashes.

Each error page names the request ID, so an admin can find the log lines of the
request a user reports. Its form follows the client:

- phones (a Cisco phone header or user agent, or a path under /directory or /lookup)
  get a ``CiscoIPPhoneText`` object in the charset the phone accepts;
- JSON clients (``Accept`` names JSON) get ``{"ok": false, "error", "status",
  "request_id"}``;
- everything else gets plain text.

An exception that escapes a route is logged once, with its stack, the request ID and
the request's method, route and path, by ``ErrorBoundary``. The client gets a 500
page and never a traceback. The Bottle app runs with ``catchall`` off, so Bottle
itself never writes a traceback to standard error (through ``wsgi.errors``).
"""

from __future__ import annotations

import json
import logging
import sys
from http import HTTPStatus
from typing import Callable, Iterable

import bottle

from appliance import context
from appliance.cisco import content_type as cisco_content_type
from appliance.cisco import negotiate_charset, render_text

logger = logging.getLogger(__name__)

PHONE_PATH_PREFIXES = ("/directory", "/lookup")
_PHONE_HEADERS = ("HTTP_X_CISCOIPPHONEMODELNAME", "HTTP_X_CISCOIPPHONEDISPLAY",
                  "HTTP_X_CISCOIPPHONESDKVERSION")
# 3PCC (MPP) firmware names itself in the User-Agent, such as Cisco-CP-8845-3PCC/11.3.
_PHONE_USER_AGENT_PREFIX = "Cisco-CP"

PHONE = "phone"
JSON = "json"
TEXT = "text"

# The message a client receives for each status, unless the route passed its own.
MESSAGES = {
    400: "The request is not valid.",
    401: "Log in first.",
    403: "Access denied.",
    404: "Page not found.",
    405: "This method is not allowed here.",
    408: "The request took too long to arrive.",
    413: "The request is too large.",
    429: "Too many requests. Wait a moment, then try again.",
    431: "The request headers are too large.",
    500: "Internal error. The administrator can find it in the log by its request ID.",
    502: "A service the appliance depends on failed.",
    503: "The directory is not ready. Try again in a moment.",
    504: "A service the appliance depends on timed out.",
}
# CiscoIPPhoneText titles; the phone shows at most 32 characters.
PHONE_TITLES = {404: "Not found", 403: "Access denied", 429: "Busy", 503: "Not ready"}


def client_kind(environ: dict) -> str:
    """Return which error form a request gets: ``phone``, ``json`` or ``text``."""
    if any(environ.get(header) for header in _PHONE_HEADERS):
        return PHONE
    if environ.get("HTTP_USER_AGENT", "").startswith(_PHONE_USER_AGENT_PREFIX):
        return PHONE
    if "json" in environ.get("HTTP_ACCEPT", "").lower():
        return JSON
    path = environ.get("PATH_INFO", "")
    if any(path == prefix or path.startswith(prefix + "/") for prefix in PHONE_PATH_PREFIXES):
        return PHONE
    return TEXT


def status_line(status: int) -> str:
    """Return a WSGI status line, such as ``404 Not Found``."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def render_error(environ: dict, status: int, message: str | None = None) -> tuple[str, bytes]:
    """Return (Content-Type, body) of the error page for this request and status.

    ``message`` is shown to the user, so it must be plain words with no internals;
    without it the standard message for the status is used.
    """
    message = message or MESSAGES.get(status) or status_line(status)
    request_id = environ.get("appliance.request_id") or context.request_id.get() or ""
    kind = client_kind(environ)
    if kind == JSON:
        body = {"ok": False, "error": message, "status": status, "request_id": request_id}
        return "application/json", json.dumps(body).encode("utf-8")
    if kind == PHONE:
        charset = negotiate_charset(environ.get("HTTP_ACCEPT_CHARSET"),
                                    environ.get("HTTP_X_CISCOIPPHONEMODELNAME"))
        title = PHONE_TITLES.get(status, "Error" if status >= 500 else "Directory")
        text = f"{message}\nRequest ID: {request_id}" if request_id else message
        return cisco_content_type(charset), render_text(title, text, charset=charset)
    text = f"{status_line(status)}: {message}\n"
    if request_id:
        text += f"Request ID: {request_id}\n"
    return "text/plain; charset=utf-8", text.encode("utf-8")


def _route_message(error: bottle.HTTPError, environ: dict) -> str | None:
    """Return the message a route passed to ``abort``, or None for Bottle's own errors.

    Bottle's router raises 404 and 405 before a route matches, with texts that echo
    the path; those get the standard message instead.
    """
    if "bottle.route" not in environ:
        return None
    body = error.body
    if isinstance(body, str) and body.strip():
        return body.strip()
    return None


def bottle_error_page(error: bottle.HTTPError) -> bytes:
    """Render an HTTPError raised by Bottle or by ``abort`` in a route."""
    environ = bottle.request.environ
    status = error.status_code
    if error.exception is not None:
        # Bottle attaches the exception only with catchall on, which install() turns
        # off; this covers an app that has catchall on again.
        log_request_exception(environ, error.exception)
    content_type, body = render_error(environ, status, _route_message(error, environ))
    bottle.response.content_type = content_type
    bottle.response.set_header("Cache-Control", "no-store")
    return body


def install(app: bottle.Bottle) -> None:
    """Render every error status of ``app`` with ``render_error``.

    Statuses with a handler of their own (``@app.error(code)``) keep it. Catchall
    is turned off, so exceptions reach ErrorBoundary with their traceback instead of
    being printed by Bottle.
    """
    app.default_error_handler = bottle_error_page
    app.config["catchall"] = False


def log_request_exception(environ: dict, error: BaseException) -> None:
    """Log an exception that ended a request, once, with its stack and the request."""
    if environ.get("appliance.error_logged"):
        return
    environ["appliance.error_logged"] = True
    route = environ.get("bottle.route")
    logger.error("request failed", exc_info=(type(error), error, error.__traceback__), extra={
        "method": environ.get("REQUEST_METHOD", ""),
        "route": route.rule if route is not None else None,
        "path": environ.get("PATH_INFO", ""),
        "client": environ.get("REMOTE_ADDR", ""),
        "phone_model": environ.get("HTTP_X_CISCOIPPHONEMODELNAME"),
    })


class ErrorBoundary:
    """WSGI layer that turns an exception escaping the app into a logged 500 page.

    It reads the whole body inside the boundary, so an error raised while the body
    is produced is caught too. Headers are not sent yet at that point, so the 500
    replaces the response the app started.
    """

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        except Exception as error:
            log_request_exception(environ, error)
            content_type, page = render_error(environ, 500)
            start_response(status_line(500), [
                ("Content-Type", content_type), ("Content-Length", str(len(page))),
                ("Cache-Control", "no-store")], sys.exc_info())
            return [page]
