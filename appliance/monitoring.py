"""Build the monitoring parts of an appliance: metrics, health checks and profiling.

``attach_monitoring`` runs inside ``build_appliance`` before the web app is made,
because the /metrics and /health routes read what it puts on the appliance.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from appliance.health import HealthChecker, RequestHistory
from appliance.logs import log_status
from appliance.metrics import MetricsThread, build_metrics
from appliance.profiling import SlowRequestLog
from appliance.web.access import ADMIN, classify_path

if TYPE_CHECKING:
    import bottle

    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)


def attach_monitoring(appliance: "Appliance") -> None:
    """Create the metrics, the metrics thread, the health checker and the request
    history, and run the database's quick integrity check."""
    config = appliance.config
    appliance.metrics = build_metrics()
    appliance.metrics.subscribe(appliance.events)
    appliance.threads.append(MetricsThread(
        appliance.metrics, appliance.store, config.metrics.refresh_seconds,
        log_dir_bytes=lambda: log_status().dir_size_bytes))
    appliance.request_history = RequestHistory()
    appliance.health = HealthChecker(appliance.store, config,
                                     threads=lambda: appliance.threads)
    appliance.health.check_integrity()
    if config.profiling.enabled:
        logger.warning("profiling enabled", extra={
            "slow_request_ms": config.profiling.slow_request_ms,
            "hint": "set [profiling] enabled = no when the investigation is done"})


def route_methods(app: "bottle.Bottle") -> list[tuple[str, str]]:
    """Return the (method, route pattern) pairs whose HTTP series exist from startup.

    These are the GET routes of phones and monitoring, which the alerts and the
    dashboard watch. Admin routes get their series at their first request, which
    keeps a scrape about a third smaller.
    """
    return [(route.method, route.rule) for route in app.routes
            if route.method == "GET" and classify_path(route.rule) != ADMIN]


def request_hooks(appliance: "Appliance") -> tuple[list[Callable[[dict], None]],
                                                   list[Callable[[Any], None]]]:
    """Return the middleware's ``on_start`` and ``on_finish`` hooks for monitoring.

    Also creates the HTTP series of every route, so call it after the app is built.
    """
    appliance.metrics.create_series(route_methods(appliance.bottle_app))
    on_finish: list[Callable[[Any], None]] = [appliance.metrics.on_finish,
                                              appliance.request_history.on_finish]
    if appliance.config.profiling.enabled:
        on_finish.append(SlowRequestLog(appliance.config.profiling.slow_request_ms).on_finish)
    return [appliance.metrics.on_start], on_finish

