"""Generate ``dashboard/phonebook.json``, the Grafana dashboard of the appliance.

Run ``python dashboard/generate.py`` from anywhere to rewrite the file, or
``python dashboard/generate.py --check`` to exit 1 when the committed file
differs from what this script makes. Every query is written here, next to the
metric names it uses, and a test scrapes a running appliance to check that each
of those names exists.

The dashboard uses only timeseries, stat and gauge panels, which Grafana 11 and
12 ship built in (the old "graph" panel went away with Angular in Grafana 12).
Every panel and every query takes its data source from the ``datasource``
template variable, so the file works both when imported through the UI and
when provisioned from disk, where ``${DS_...}`` import placeholders are never
filled in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "phonebook.json"

UID = "phonebook-appliance"
TITLE = "Phonebook Appliance"
# Grafana 12.2 and later migrate 41 to their current 42 on load. 42 would not
# do: Grafana's backend migrator reports an error for a dashboard above its own
# latest version, which is 41 in 12.0 and 12.1. Grafana 11's frontend runs only
# the migrations below the file's version, so it loads 41 unchanged.
# NOTE: read in Grafana's source (schemaversion and DashboardMigrator), not
# tried on a running Grafana.
SCHEMA_VERSION = 41

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every query selects the appliances picked in the job and instance variables.
SELECTOR = 'job=~"$job", instance=~"$instance"'
# Routes left out of the server-error ratio, as in the PhonebookHighErrorRatio
# alert, because scrapes would dilute it and /health returns 503 on purpose
# while it reports "fail".
MONITORING_ROUTES = "/metrics.*|/health.*|/livez|/readyz"
# Routes that phones and the PBX call, as in the PhonebookDirectorySlow alert.
PHONE_ROUTES = "/directory.*|/lookup"
GRID_WIDTH = 24


def select(*matchers: str) -> str:
    """Return a label selector with the dashboard variables and ``matchers``."""
    return "{" + ", ".join((SELECTOR, *matchers)) + "}"


def rate(metric: str, *matchers: str, window: str = "$__rate_interval") -> str:
    return f"rate({metric}{select(*matchers)}[{window}])"


def increase(metric: str, *matchers: str, window: str = "1h") -> str:
    return f"increase({metric}{select(*matchers)}[{window}])"


def sum_by(labels: str, inner: str) -> str:
    return f"sum by ({labels}) ({inner})"


def mean(histogram: str, by: str, window: str = "$__rate_interval") -> str:
    """Return the mean observation of ``histogram`` per ``by`` over ``window``."""
    total = rate(f"{histogram}_sum", window=window)
    count = rate(f"{histogram}_count", window=window)
    return f"{sum_by(by, total)} / {sum_by(by, count)}"


def quantile(q: float, histogram: str, by: str, *matchers: str,
             window: str = "$__rate_interval") -> str:
    """Return a histogram_quantile over ``histogram`` that keeps ``le`` and ``by``."""
    buckets = rate(f"{histogram}_bucket", *matchers, window=window)
    return f"histogram_quantile({q}, sum by ({by}, le) ({buckets}))"


def target(expr: str, legend: str = "", ref_id: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "refId": ref_id, "expr": expr,
            "legendFormat": legend or "__auto", "range": True}


def targets(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """Build targets from (expr, legend) pairs with refIds A, B, C, ..."""
    return [target(expr, legend, chr(ord("A") + index))
            for index, (expr, legend) in enumerate(pairs)]


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    """Build absolute thresholds from (color, lower bound) steps; the first is None."""
    return {"mode": "absolute",
            "steps": [{"color": color, "value": value} for color, value in steps]}


def value_mappings(*entries: tuple[str, str, str]) -> list[dict[str, Any]]:
    """Map exact values to text and colour, from (value, text, color) entries."""
    options = {value: {"text": text, "color": color, "index": index}
               for index, (value, text, color) in enumerate(entries)}
    return [{"type": "value", "options": options}]


# ---------------------------------------------------------------------------
# Panels. Each builder returns a panel without id and gridPos; ``Layout``
# places it and numbers it.

LAST_VALUE = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def panel(kind: str, title: str, description: str,
          panel_targets: list[dict[str, Any]], defaults: dict[str, Any],
          options: dict[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """Build a panel of type ``kind``; ``size`` is its (width, height) in grid units."""
    return {
        "type": kind, "title": title, "description": description,
        "datasource": DATASOURCE, "targets": panel_targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options, "_size": size,
    }


def timeseries(title: str, description: str, panel_targets: list[dict[str, Any]],
               unit: str = "short", width: int = 12, height: int = 8,
               panel_thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
              "showPoints": "never", "spanNulls": False,
              "thresholdsStyle": {"mode": "line" if panel_thresholds else "off"}}
    defaults = {"unit": unit, "min": 0, "custom": custom,
                "thresholds": panel_thresholds or thresholds(("green", None))}
    options = {"legend": {"displayMode": "list", "placement": "bottom",
                          "showLegend": True},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return panel("timeseries", title, description, panel_targets, defaults, options,
                 (width, height))


def stat(title: str, description: str, panel_targets: list[dict[str, Any]],
         unit: str = "short", width: int = 6, height: int = 4,
         panel_thresholds: dict[str, Any] | None = None,
         mappings: list[dict[str, Any]] | None = None, text_mode: str = "auto",
         no_value: str | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": unit, "mappings": mappings or [],
        "thresholds": panel_thresholds or thresholds(("green", None)),
    }
    if no_value is not None:
        defaults["noValue"] = no_value
    options = {"reduceOptions": LAST_VALUE, "colorMode": "value", "graphMode": "none",
               "justifyMode": "auto", "orientation": "auto", "textMode": text_mode}
    return panel("stat", title, description, panel_targets, defaults, options,
                 (width, height))


def gauge(title: str, description: str, panel_targets: list[dict[str, Any]],
          unit: str, minimum: float, maximum: float,
          panel_thresholds: dict[str, Any], width: int = 6,
          height: int = 8) -> dict[str, Any]:
    defaults = {"unit": unit, "min": minimum, "max": maximum,
                "thresholds": panel_thresholds, "mappings": []}
    options = {"reduceOptions": LAST_VALUE, "orientation": "auto",
               "showThresholdLabels": False, "showThresholdMarkers": True}
    return panel("gauge", title, description, panel_targets, defaults, options,
                 (width, height))


class Layout:
    """Place panels left to right in rows of 24 grid units and number them."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = 0
        self.y = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._new_line()
        self._append({"type": "row", "title": title, "collapsed": False,
                      "datasource": DATASOURCE, "panels": []}, GRID_WIDTH, 1)
        self._new_line()

    def add(self, *panels: dict[str, Any]) -> None:
        for panel in panels:
            width, height = panel.pop("_size")
            if self.x + width > GRID_WIDTH:
                self._new_line()
            self._append(panel, width, height)

    def _append(self, panel: dict[str, Any], width: int, height: int) -> None:
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def _new_line(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0


# ---------------------------------------------------------------------------
# Rows, top to bottom.

UP_MAPPINGS = value_mappings(("0", "Down", "red"), ("1", "Up", "green"))
SECONDS_STALE = thresholds(("green", None), ("orange", 3 * 3600), ("red", 24 * 3600))


def per_instance(metric: str) -> tuple[str, str]:
    """Return the (expr, legend) pair that plots ``metric`` once per appliance."""
    return f"{metric}{select()}", "{{instance}}"


def legend_of(labels: str) -> str:
    """Return a legend that shows each of the comma-separated ``labels``."""
    return " ".join("{{" + label.strip() + "}}" for label in labels.split(","))


def rate_by(labels: str, metric: str, *matchers: str) -> tuple[str, str]:
    """Return the per-second rate of ``metric`` summed by ``labels``, with a legend."""
    return sum_by(labels, rate(metric, *matchers)), legend_of(labels)


def hourly_by(labels: str, metric: str, *matchers: str) -> tuple[str, str]:
    """Return the increase of ``metric`` over the last hour summed by ``labels``."""
    return sum_by(labels, increase(metric, *matchers)), legend_of(labels)


def add_overview(layout: Layout) -> None:
    layout.row("Overview")
    uptime = f"time() - process_start_time_seconds{select()}"
    layout.add(
        stat("Scrape target", "Whether Prometheus reached the appliance on its last "
             "scrape (the up series).",
             targets(per_instance("up")), width=8, mappings=UP_MAPPINGS,
             panel_thresholds=thresholds(("red", None), ("green", 1))),
        stat("Version", "Appliance version from phonebook_build_info.",
             targets((f"phonebook_build_info{select()}", "{{version}}")),
             width=8, text_mode="name"),
        stat("Uptime", "Time since the appliance process started.",
             targets((uptime, "{{instance}}")), unit="s", width=8),
    )


def add_traffic(layout: Layout) -> None:
    layout.row("Traffic")
    requests = "phonebook_http_requests_total"
    layout.add(
        timeseries("Requests per second by route", "HTTP requests answered, by "
                   "Bottle route pattern (unmatched for unknown paths).",
                   targets(rate_by("route", requests)), unit="reqps"),
        timeseries("Phone requests per second by family", "Requests from Cisco "
                   "phones, by phone family (from the model header or user agent).",
                   targets(rate_by("family", "phonebook_phone_requests_total")),
                   unit="reqps"),
        timeseries("Requests in flight", "Requests being served at the moment of "
                   "the scrape. Near the waitress thread count, requests queue.",
                   targets(per_instance("phonebook_http_requests_in_flight"))),
        timeseries("Response bytes per second by route", "Bytes of response bodies "
                   "sent, by route pattern.",
                   targets(rate_by("route", "phonebook_http_response_bytes_total")),
                   unit="Bps"),
    )


def add_errors(layout: Layout) -> None:
    layout.row("Errors")
    requests = "phonebook_http_requests_total"
    excluded = f'route!~"{MONITORING_ROUTES}"'
    server_errors = rate(requests, 'status=~"5.."', excluded, window="5m")
    answered = rate(requests, excluded, window="5m")
    layout.add(
        stat("Server error ratio (5 minutes)", "Share of requests that ended in a "
             "5xx status over the last 5 minutes, without scrapes and health "
             "probes. The PhonebookHighErrorRatio alert fires above 5%.",
             targets((f"sum({server_errors}) / sum({answered})", "5xx ratio")),
             unit="percentunit", width=6, height=8,
             panel_thresholds=thresholds(("green", None), ("orange", 0.01),
                                         ("red", 0.05))),
        timeseries("Responses per second by status", "HTTP responses by status code.",
                   targets(rate_by("status", requests)), unit="reqps", width=9),
        timeseries("Server errors per second by route", "Responses with a 5xx status, "
                   "by route pattern and status.",
                   targets(rate_by("route, status", requests, 'status=~"5.."')),
                   unit="reqps", width=9),
        timeseries("Client errors per second by route", "Responses with a 4xx status "
                   "(bad parameters, unknown paths, rejected clients), by route.",
                   targets(rate_by("route, status", requests, 'status=~"4.."')),
                   unit="reqps"),
        timeseries("Notifications in the last hour", "Notifications the appliance "
                   "sent to admins, by channel and outcome.",
                   targets(hourly_by("channel, outcome",
                                     "phonebook_notifications_total"))),
    )


def add_latency(layout: Layout) -> None:
    layout.row("Latency per route")
    duration = "phonebook_http_request_duration_seconds"
    directory_p95 = quantile(0.95, duration, "job", f'route=~"{PHONE_ROUTES}"',
                             window="5m")
    layout.add(
        stat("Directory p95 (5 minutes)", "95th percentile response time of the "
             "directory and caller-name lookup routes over the last 5 minutes. The "
             "PhonebookDirectorySlow alert fires above 100 ms.",
             targets((directory_p95, "p95")), unit="s", width=6, height=8,
             panel_thresholds=thresholds(("green", None), ("orange", 0.05),
                                         ("red", 0.1))),
        timeseries("p95 response time by route", "95th percentile of the time from "
                   "request to the end of the response body, by route pattern.",
                   targets((quantile(0.95, duration, "route"), "{{route}}")),
                   unit="s", width=9,
                   panel_thresholds=thresholds(("green", None), ("red", 0.1))),
        timeseries("p50 response time by route", "Median response time by route "
                   "pattern.",
                   targets((quantile(0.5, duration, "route"), "{{route}}")),
                   unit="s", width=9),
    )


def add_searches(layout: Layout) -> None:
    layout.row("Searches")
    results = "phonebook_directory_search_results"
    search_p95 = quantile(0.95, "phonebook_directory_search_duration_seconds", "kind")
    # prometheus-client writes the 0 bucket as le="0.0". The regex also takes
    # "0", the form some Prometheus versions store for other scrape formats.
    no_results = rate(f"{results}_bucket", 'le=~"0|0\\\\.0"')
    layout.add(
        timeseries("Searches per second by kind", "Directory searches by kind: "
                   "name, number or keypad letters.",
                   targets(rate_by("kind", "phonebook_directory_searches_total")),
                   unit="reqps", width=8),
        timeseries("Search time p95 by kind", "95th percentile of the time one "
                   "search takes in the store.",
                   targets((search_p95, "{{kind}}")), unit="s", width=8),
        timeseries("Results per search by kind", "Average contacts found by one "
                   "search, and searches that found nothing, per second.",
                   targets((mean(results, "kind"), "{{kind}} average results"),
                           (sum_by("kind", no_results),
                            "{{kind}} empty searches per second")), width=8),
        timeseries("Pages served per second by XML object", "Cisco XML objects sent "
                   "to phones: menus, directory pages, input forms and messages.",
                   targets(rate_by("object", "phonebook_directory_pages_total")),
                   unit="reqps", width=24),
    )


def add_sync(layout: Layout) -> None:
    layout.row("Sync runs and outcomes")
    duration = "phonebook_sync_duration_seconds"
    layout.add(
        stat("Consecutive sync failures", "Google sync runs that failed since the "
             "last successful one. The PhonebookSyncFailing alert fires at 3.",
             targets(per_instance("phonebook_sync_consecutive_failures")),
             width=6, height=8,
             panel_thresholds=thresholds(("green", None), ("orange", 1), ("red", 3))),
        timeseries("Sync runs in the last hour", "Google sync runs finished, by kind "
                   "(full or incremental) and outcome.",
                   targets(hourly_by("kind, outcome", "phonebook_sync_runs_total")),
                   width=9),
        timeseries("Average sync duration (last hour)", "Mean time of the sync runs "
                   "that finished in the last hour, by kind.",
                   targets((mean(duration, "kind", window="1h"), "{{kind}}")),
                   unit="s", width=9),
        timeseries("Google API calls in the last hour", "Calls to the People API by "
                   "method and HTTP status (error when no response came).",
                   targets(hourly_by("method, status",
                                     "phonebook_google_api_calls_total"))),
        timeseries("Google API retries in the last hour", "Calls tried again after a "
                   "429, a 5xx or a timeout, by method.",
                   targets(hourly_by("method", "phonebook_google_api_retries_total"))),
    )


def add_contacts(layout: Layout) -> None:
    layout.row("Contacts and changes")
    layout.add(
        stat("Contacts", "Contacts in the store, as phones see them.",
             targets((f"sum(phonebook_contacts{select()})", "contacts")),
             width=4, height=8),
        stat("Numbers", "Phone numbers of those contacts. Each is one directory "
             "entry.",
             targets((f"sum(phonebook_numbers{select()})", "numbers")),
             width=4, height=8),
        timeseries("Contacts and numbers", "Contacts and numbers in the store over "
                   "time.",
                   targets((f"phonebook_contacts{select()}", "contacts {{instance}}"),
                           (f"phonebook_numbers{select()}", "numbers {{instance}}")),
                   width=8),
        timeseries("Contact changes in the last hour", "Contacts the Google sync "
                   "added, updated or deleted.",
                   targets(hourly_by("change",
                                     "phonebook_sync_contacts_changed_total")),
                   width=8),
    )


def add_freshness(layout: Layout) -> None:
    layout.row("Freshness")
    # "> 0" drops the value 0 that means "never", so the panels show "never"
    # rather than an age of 56 years.
    success = f"phonebook_sync_last_success_timestamp_seconds{select()}"
    attempt = f"phonebook_sync_last_attempt_timestamp_seconds{select()}"
    refresh = f"phonebook_metrics_refresh_timestamp_seconds{select()}"
    success_age = f"time() - ({success} > 0)"
    layout.add(
        stat("Since last successful sync", "Age of the contacts phones see. Alerts "
             "fire after 3 hours (warning) and 24 hours (critical).",
             targets((success_age, "{{instance}}")), unit="s", width=8,
             panel_thresholds=SECONDS_STALE, no_value="never"),
        stat("Since last sync attempt", "Time since the last Google sync started, "
             "whatever its outcome.",
             targets((f"time() - ({attempt} > 0)", "{{instance}}")), unit="s",
             width=8, no_value="never"),
        stat("Metrics refreshed", "Time since the metrics thread last read the store "
             "and the disk. It refreshes every [metrics] refresh_seconds.",
             targets((f"time() - {refresh}", "{{instance}}")), unit="s", width=8,
             panel_thresholds=thresholds(("green", None), ("orange", 120),
                                         ("red", 300))),
        timeseries("Age of the synced contacts", "Time since the last successful "
                   "Google sync, with the alert thresholds.",
                   targets((success_age, "{{instance}}")), unit="s", width=24,
                   panel_thresholds=SECONDS_STALE),
    )


def add_authorisation(layout: Layout) -> None:
    layout.row("Authorisation")
    layout.add(
        stat("Google sync", "Whether a Google account is configured for sync.",
             targets(per_instance("phonebook_sync_enabled")), height=8,
             mappings=value_mappings(("0", "Not configured", "text"),
                                     ("1", "Configured", "green"))),
        stat("Google authorisation", "Whether the stored Google authorisation "
             "works. Not authorised with sync configured needs an admin on the "
             "setup page.",
             targets(per_instance("phonebook_google_authorised")), height=8,
             mappings=value_mappings(("0", "Not authorised", "red"),
                                     ("1", "Authorised", "green"))),
        timeseries("Token refreshes in the last hour", "Refreshes of the Google "
                   "access token by outcome. Errors mean the authorisation was "
                   "revoked or expired.",
                   targets(hourly_by("outcome",
                                     "phonebook_google_token_refreshes_total")),
                   width=6),
        timeseries("Google API errors in the last hour", "People API calls that did "
                   "not succeed, by status. 401 and 403 point to authorisation.",
                   targets(hourly_by("status", "phonebook_google_api_calls_total",
                                     'status!~"2.."')), width=6),
    )


def add_disk(layout: Layout) -> None:
    layout.row("Disk")
    free = f"phonebook_data_disk_free_bytes{select()}"
    total = f"phonebook_data_disk_total_bytes{select()}"
    layout.add(
        gauge("Data disk free", "Free share of the disk that holds the database. "
              "Alerts fire below 10% (warning) and 5% (critical).",
              targets((f"{free} / {total}", "{{instance}}")), unit="percentunit",
              minimum=0, maximum=1,
              panel_thresholds=thresholds(("red", None), ("orange", 0.05),
                                          ("green", 0.10))),
        stat("Data disk free space", "Free bytes on the disk of the data folder.",
             targets((free, "{{instance}}")), unit="bytes", height=8),
        timeseries("Database size", "Size of the database with its WAL and "
                   "shared-memory files.",
                   targets(per_instance("phonebook_database_size_bytes")),
                   unit="bytes", width=6),
        timeseries("Log folder size", "Size of the files in the log folder. "
                   "Rotation and the size cap make it drop.",
                   targets(per_instance("phonebook_log_dir_size_bytes")),
                   unit="bytes", width=6),
    )


def add_process(layout: Layout) -> None:
    layout.row("Memory and CPU")
    cpu = f"rate(process_cpu_seconds_total{select()}[$__rate_interval])"
    layout.add(
        timeseries("Resident memory", "Memory the appliance process holds in RAM.",
                   targets(per_instance("process_resident_memory_bytes")),
                   unit="bytes", width=8),
        timeseries("CPU usage", "CPU time used per second. 100% is one core busy.",
                   targets((cpu, "{{instance}}")), unit="percentunit", width=8),
        timeseries("Open file descriptors", "Files and sockets the process has open.",
                   targets(per_instance("process_open_fds")), width=8),
    )


ROWS = (add_overview, add_traffic, add_errors, add_latency, add_searches, add_sync,
        add_contacts, add_freshness, add_authorisation, add_disk, add_process)


def variables() -> list[dict[str, Any]]:
    """Build the datasource, job and instance template variables."""
    datasource = {
        "type": "datasource", "name": "datasource", "label": "Data source",
        "query": "prometheus", "current": {}, "options": [], "regex": "",
        "hide": 0, "refresh": 1, "includeAll": False, "multi": False,
    }
    job_query = "label_values(phonebook_build_info, job)"
    instance_query = 'label_values(phonebook_build_info{job=~"$job"}, instance)'
    return [datasource, _query_variable("job", "Job", job_query),
            _query_variable("instance", "Instance", instance_query)]


def _query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "definition": query,
        "query": {"qryType": 1, "query": query,
                  "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {}, "options": [], "regex": "", "hide": 0,
        # 2: reload the values whenever the time range changes.
        "refresh": 2, "includeAll": True, "allValue": ".*", "multi": True,
        "sort": 1,
    }


def build_dashboard() -> dict[str, Any]:
    """Build the dashboard as a dict in Grafana's classic JSON model."""
    layout = Layout()
    for add_row in ROWS:
        add_row(layout)
    return {
        "id": None,
        "uid": UID,
        "title": TITLE,
        "description": "Requests, searches, Google sync, contacts and the box of "
                       "Phonebook Appliance.",
        "tags": ["phonebook", "cisco"],
        "editable": True,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "links": [],
        "annotations": {"list": []},
        "templating": {"list": variables()},
        "panels": layout.panels,
    }


def render() -> str:
    """Return the dashboard as the JSON text written to ``phonebook.json``."""
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when {OUTPUT.name} differs from the "
                             "generated text")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python dashboard/generate.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
