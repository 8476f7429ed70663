"""Health routes: /health (JSON or HTML), /livez and /readyz."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import bottle

from appliance.web.health_page import render_health_page

if TYPE_CHECKING:
    from appliance.runtime import Appliance

HEALTH_JSON = "application/health+json"
_JSON_TYPES = ("application/health+json", "application/json")


def prefers_html(accept: str, format_param: str = "") -> bool:
    """Tell whether a client asked for the HTML page rather than JSON.

    ``?format=html`` or ``?format=json`` decides first. Otherwise HTML only when
    the Accept header names ``text/html`` with a higher weight than any JSON type,
    so curl, Prometheus and monitoring probes (``*/*``) get JSON.
    """
    if format_param in ("html", "json"):
        return format_param == "html"
    html_q, json_q = 0.0, 0.0
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        weight = _weight(params)
        media = media.strip().lower()
        if media == "text/html":
            html_q = max(html_q, weight)
        elif media in _JSON_TYPES:
            json_q = max(json_q, weight)
    return html_q > json_q


def _weight(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    """Add /health, /livez and /readyz to the app."""

    @app.get("/health")
    def health():
        checker = appliance.health
        report = checker.report()
        response = bottle.response
        response.status = report.http_status
        response.set_header("Cache-Control", f"max-age={checker.cache_s}")
        response.set_header("Vary", "Accept")
        if prefers_html(bottle.request.get_header("Accept", ""),
                        bottle.request.query.get("format", "")):
            response.content_type = "text/html; charset=utf-8"
            return render_health_page(report, checker.recent_sync_runs(),
                                      appliance.request_history.snapshot())
        response.content_type = HEALTH_JSON
        return json.dumps(report.to_json(), indent=2) + "\n"

    @app.get("/livez")
    def livez():
        bottle.response.content_type = "text/plain; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        return "ok\n"

    @app.get("/readyz")
    def readyz():
        bottle.response.content_type = "text/plain; charset=utf-8"
        bottle.response.set_header("Cache-Control", "no-store")
        if appliance.stop_event.is_set():
            bottle.response.status = 503
            return "not ready: the appliance is stopping\n"
        is_ready, reason = appliance.health.readiness()
        if not is_ready:
            bottle.response.status = 503
            return f"not ready: {reason}\n"
        return "ready\n"
