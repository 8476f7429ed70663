"""Prometheus metrics: the registry, the request hooks, the event subscribers and
the metrics thread.

``build_metrics`` makes a new registry with every metric of the appliance on it;
nothing is created at import time, so each test gets a fresh registry. Request
metrics come from the ``on_start``/``on_finish`` hooks of the request middleware,
directory, sync, Google and notification metrics from events, and the gauges that
read the disk or the database from ``MetricsThread``, which refreshes them every
``[metrics] refresh_seconds`` so a scrape only formats values already in memory.
"""

from __future__ import annotations

import logging
import platform
import re
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.process_collector import ProcessCollector

from appliance import __version__

if TYPE_CHECKING:
    from appliance.events import Events
    from appliance.store import Store
    from appliance.web.middleware import RequestRecord

logger = logging.getLogger(__name__)

# Buckets from 1 ms to 2.5 s: a phone gives up on a directory page after a few
# seconds, and a healthy page takes a few milliseconds.
HTTP_DURATION_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5)
SEARCH_DURATION_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)
# 32 is the most entries one Cisco directory page can show.
SEARCH_RESULT_BUCKETS = (0, 1, 2, 5, 10, 20, 32, 50, 100, 500)
SYNC_DURATION_BUCKETS = (.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
OTHER_METHOD = "other"
SEARCH_KINDS = ("name", "number", "keypad")
PAGE_OBJECTS = ("CiscoIPPhoneMenu", "CiscoIPPhoneDirectory", "CiscoIPPhoneInput",
                "CiscoIPPhoneText")
PHONE_FAMILIES = ("79xx", "78xx", "88xx", "3pcc", "other")
SYNC_KINDS = ("full", "incremental")
OUTCOMES = ("ok", "error")
CHANGES = ("added", "updated", "deleted")
NOTIFY_CHANNELS = ("webhook", "email")

# Requests to these route prefixes come from phones even when a phone sends no
# model header (some SIP firmware sends none).
PHONE_ROUTE_PREFIX = "/directory"

_PAGE_OBJECT = re.compile(r"CiscoIPPhone[A-Za-z]{1,40}")
_MODEL_NUMBER = re.compile(r"CP-?(\d{2})\d{2}", re.IGNORECASE)


def phone_family(model: str | None, user_agent: str | None) -> str | None:
    """Return the phone family of a request, or None when no phone sent it.

    The model comes from the ``x-CiscoIPPhoneModelName`` header (``CP-7965G``);
    3PCC/MPP firmware sends a User-Agent such as ``Cisco-CP-8845-3PCC/11.3``.
    """
    agent = user_agent or ""
    is_cisco_agent = agent.lower().startswith("cisco")
    if not model and not is_cisco_agent:
        return None
    identity = f"{model or ''} {agent if is_cisco_agent else ''}"
    if "3pcc" in identity.lower():
        return "3pcc"
    match = _MODEL_NUMBER.search(identity)
    if match is None:
        return "other"
    series = match.group(1)
    return f"{series}xx" if f"{series}xx" in PHONE_FAMILIES else "other"


def method_label(method: str) -> str:
    """Return the method as a label value from a fixed set, so it stays bounded."""
    return method if method in HTTP_METHODS else OTHER_METHOD


class Metrics:
    """Every metric of the appliance on one registry, with the hooks that feed them.

    ``clock`` gives Unix seconds for timestamp gauges, ``timer`` monotonic seconds
    for durations and ``disk_usage`` the space on a folder's disk. Tests pass fixed
    ones to compare whole outputs.
    """

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time,
                 timer: Callable[[], float] = time.perf_counter,
                 disk_usage: Callable[[Path], Any] = shutil.disk_usage) -> None:
        self.registry = registry
        self.clock = clock
        self.timer = timer
        self.disk_usage = disk_usage
        self._consecutive_failures = 0
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._define_http()
        self._define_directory()
        self._define_sync()
        self._define_box()

    # -- definitions ----------------------------------------------------------

    def _define_http(self) -> None:
        registry = self.registry
        self.http_requests = Counter(
            "phonebook_http_requests", "HTTP requests answered, by method, route pattern "
            "and status code.", ("method", "route", "status"), registry=registry)
        self.http_duration = Histogram(
            "phonebook_http_request_duration_seconds", "Time from receiving an HTTP request "
            "to the end of its response body, in seconds.", ("method", "route"),
            buckets=HTTP_DURATION_BUCKETS, registry=registry)
        self.http_in_flight = Gauge(
            "phonebook_http_requests_in_flight", "HTTP requests being served right now.",
            registry=registry)
        self.http_response_bytes = Counter(
            "phonebook_http_response_bytes", "Bytes of HTTP response bodies sent, by "
            "route pattern.", ("route",), registry=registry)

    def _define_directory(self) -> None:
        registry = self.registry
        self.searches = Counter(
            "phonebook_directory_searches", "Directory searches run, by kind of search.",
            ("kind",), registry=registry)
        self.search_duration = Histogram(
            "phonebook_directory_search_duration_seconds", "Time one directory search "
            "took, in seconds.", ("kind",), buckets=SEARCH_DURATION_BUCKETS,
            registry=registry)
        self.search_results = Histogram(
            "phonebook_directory_search_results", "Contacts found by one directory "
            "search.", ("kind",), buckets=SEARCH_RESULT_BUCKETS, registry=registry)
        self.pages = Counter(
            "phonebook_directory_pages", "Cisco XML pages served to phones, by XML object "
            "type.", ("object",), registry=registry)
        self.phone_requests = Counter(
            "phonebook_phone_requests", "Requests from Cisco phones, by phone family.",
            ("family",), registry=registry)

    def _define_sync(self) -> None:
        registry = self.registry
        self.sync_enabled = Gauge(
            "phonebook_sync_enabled", "1 when a Google account is configured for sync, "
            "else 0.", registry=registry)
        self.sync_runs = Counter(
            "phonebook_sync_runs", "Google sync runs finished, by kind and outcome.",
            ("kind", "outcome"), registry=registry)
        self.sync_duration = Histogram(
            "phonebook_sync_duration_seconds", "Time one Google sync run took, in seconds.",
            ("kind",), buckets=SYNC_DURATION_BUCKETS, registry=registry)
        self.sync_changes = Counter(
            "phonebook_sync_contacts_changed", "Contacts the Google sync added, updated "
            "or deleted.", ("change",), registry=registry)
        self.sync_last_attempt = Gauge(
            "phonebook_sync_last_attempt_timestamp_seconds", "Unix time in seconds when "
            "the last Google sync started.", registry=registry)
        self.sync_last_success = Gauge(
            "phonebook_sync_last_success_timestamp_seconds", "Unix time in seconds when "
            "the last successful Google sync finished.", registry=registry)
        self.sync_failures = Gauge(
            "phonebook_sync_consecutive_failures", "Google sync runs that failed since the "
            "last successful one.", registry=registry)
        self.google_calls = Counter(
            "phonebook_google_api_calls", "Calls to Google APIs, by API method and HTTP "
            "status (error when no response came).", ("method", "status"), registry=registry)
        self.google_retries = Counter(
            "phonebook_google_api_retries", "Calls to Google APIs that were tried again, "
            "by API method.", ("method",), registry=registry)
        self.google_token_refreshes = Counter(
            "phonebook_google_token_refreshes", "Refreshes of the Google access token, by "
            "outcome.", ("outcome",), registry=registry)
        self.google_authorised = Gauge(
            "phonebook_google_authorised", "1 while the stored Google authorisation works, "
            "else 0.", registry=registry)

    def _define_box(self) -> None:
        registry = self.registry
        self.contacts = Gauge("phonebook_contacts", "Contacts in the store.",
                              registry=registry)
        self.numbers = Gauge("phonebook_numbers", "Phone numbers in the store.",
                             registry=registry)
        self.database_size = Gauge(
            "phonebook_database_size_bytes", "Size of the database file with its WAL and "
            "shared-memory files, in bytes.", registry=registry)
        self.disk_free = Gauge(
            "phonebook_data_disk_free_bytes", "Free space on the disk of the data folder, "
            "in bytes.", registry=registry)
        self.disk_total = Gauge(
            "phonebook_data_disk_total_bytes", "Size of the disk of the data folder, in "
            "bytes.", registry=registry)
        self.log_dir_size = Gauge(
            "phonebook_log_dir_size_bytes", "Size of the log folder's files, in bytes (0 "
            "when logs go to stdout only).", registry=registry)
        self.notifications = Counter(
            "phonebook_notifications", "Notifications sent to admins, by channel and "
            "outcome.", ("channel", "outcome"), registry=registry)
        self.build_info = Info(
            "phonebook_build", "Version of the appliance and the Python and platform it "
            "runs on.", registry=registry)
        self.build_info.info({
            "version": __version__,
            "python": platform.python_version(),
            "platform": f"{platform.system()}-{platform.machine()}",
        })
        self.refreshed_at = Gauge(
            "phonebook_metrics_refresh_timestamp_seconds", "Unix time in seconds of the "
            "last refresh of the store and disk gauges by the metrics thread.",
            registry=registry)

    # -- series that read zero before their first event ------------------------

    def create_series(self, routes: Iterable[tuple[str, str]] = ()) -> None:
        """Create every bounded label set, so each series reads zero from the start.

        ``routes`` are (method, route pattern) pairs of the web app; each gets its
        duration and bytes series and a 200 counter series.
        """
        for method, route in routes:
            method = method_label(method)
            self.http_requests.labels(method, route, "200")
            self.http_duration.labels(method, route)
            self.http_response_bytes.labels(route)
        for kind in SEARCH_KINDS:
            self.searches.labels(kind)
            self.search_duration.labels(kind)
            self.search_results.labels(kind)
        for name in PAGE_OBJECTS:
            self.pages.labels(name)
        for family in PHONE_FAMILIES:
            self.phone_requests.labels(family)
        for kind in SYNC_KINDS:
            self.sync_duration.labels(kind)
            for outcome in OUTCOMES:
                self.sync_runs.labels(kind, outcome)
        for change in CHANGES:
            self.sync_changes.labels(change)
        for outcome in OUTCOMES:
            self.google_token_refreshes.labels(outcome)
            for channel in NOTIFY_CHANNELS:
                self.notifications.labels(channel, outcome)

    # -- request hooks for appliance.web.middleware ----------------------------

    def on_start(self, environ: dict) -> None:
        """Count a request as in flight and note when it started."""
        environ["appliance.metrics_started"] = self.timer()
        self.http_in_flight.inc()

    def on_finish(self, record: "RequestRecord") -> None:
        """Count a finished request, its duration, body size and phone family."""
        environ = record.environ
        started = environ.pop("appliance.metrics_started", None)
        if started is None:
            duration_s = record.duration_s
        else:
            duration_s = self.timer() - started
            self.http_in_flight.dec()
        method = method_label(record.method)
        self._child(self.http_requests, method, record.route, str(record.status)).inc()
        self._child(self.http_duration, method, record.route).observe(duration_s)
        self._child(self.http_response_bytes, record.route).inc(record.bytes_sent)

        family = phone_family(environ.get("HTTP_X_CISCOIPPHONEMODELNAME"),
                              environ.get("HTTP_USER_AGENT"))
        if family is None and record.route.startswith(PHONE_ROUTE_PREFIX):
            family = "other"
        if family is not None:
            self._child(self.phone_requests, family).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """Return ``metric.labels(*labels)``, kept after the first call.

        prometheus-client validates and joins the label values on every ``labels``
        call, about 0.9 microseconds each and eight per directory request. Every
        label value here comes from a bounded set, so the cache stays small.
        """
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            self._children[key] = child
        return child

    # -- event subscribers ----------------------------------------------------

    def subscribe(self, events: "Events") -> None:
        """Subscribe to the events that feed the directory, sync and notify metrics."""
        events.subscribe("directory.search", self._on_search)
        events.subscribe("directory.page", self._on_page)
        events.subscribe("sync.started", self._on_sync_started)
        events.subscribe("sync.finished", self._on_sync_finished)
        events.subscribe("google.call", self._on_google_call)
        events.subscribe("google.retry", self._on_google_retry)
        events.subscribe("google.token_refresh", self._on_token_refresh)
        events.subscribe("google.authorisation", self._on_authorisation)
        events.subscribe("notify.sent", self._on_notify)

    def _on_search(self, kind: str, duration_s: float, results: int, **_: Any) -> None:
        if kind not in SEARCH_KINDS:
            logger.warning("unknown search kind in event", extra={"kind": kind})
            return
        self._child(self.searches, kind).inc()
        self._child(self.search_duration, kind).observe(duration_s)
        self._child(self.search_results, kind).observe(results)

    def _on_page(self, object: str, **_: Any) -> None:  # noqa: A002 (event field name)
        if not _PAGE_OBJECT.fullmatch(object):
            logger.warning("unknown page object in event", extra={"object": object})
            return
        self._child(self.pages, object).inc()

    def _on_sync_started(self, **_: Any) -> None:
        self.sync_last_attempt.set(self.clock())

    def _on_sync_finished(self, kind: str, outcome: str, duration_s: float, added: int = 0,
                          updated: int = 0, deleted: int = 0,
                          started_at: float | None = None,
                          finished_at: float | None = None, **_: Any) -> None:
        if kind not in SYNC_KINDS:
            logger.warning("unknown sync kind in event", extra={"kind": kind})
            kind = "full"
        outcome = "ok" if outcome == "ok" else "error"
        self.sync_runs.labels(kind, outcome).inc()
        self.sync_duration.labels(kind).observe(duration_s)
        for change, count in (("added", added), ("updated", updated), ("deleted", deleted)):
            if count:
                self.sync_changes.labels(change).inc(count)
        self.sync_last_attempt.set(started_at if started_at is not None else self.clock())
        if outcome == "ok":
            self._consecutive_failures = 0
            self.sync_last_success.set(finished_at if finished_at is not None
                                       else self.clock())
        else:
            self._consecutive_failures += 1
        self.sync_failures.set(self._consecutive_failures)

    def _on_google_call(self, method: str, status: int, **_: Any) -> None:
        self.google_calls.labels(method, str(status) if status else "error").inc()

    def _on_google_retry(self, method: str, **_: Any) -> None:
        self.google_retries.labels(method).inc()

    def _on_token_refresh(self, outcome: str, **_: Any) -> None:
        self.google_token_refreshes.labels("ok" if outcome == "ok" else "error").inc()

    def _on_authorisation(self, authorised: bool, **_: Any) -> None:
        self.google_authorised.set(1 if authorised else 0)
        self.sync_enabled.set(1)

    def _on_notify(self, channel: str, outcome: str, **_: Any) -> None:
        if channel not in NOTIFY_CHANNELS:
            logger.warning("unknown notify channel in event", extra={"channel": channel})
            return
        self.notifications.labels(channel, "ok" if outcome == "ok" else "error").inc()

    # -- gauges that cost I/O ---------------------------------------------------

    def refresh(self, store: "Store", log_dir_bytes: int = 0) -> None:
        """Read counts, sizes, disk space and sync state into their gauges.

        Runs on the metrics thread; raises OSError or sqlite3.Error when the disk
        or the database cannot be read.
        """
        self.contacts.set(store.count_contacts())
        self.numbers.set(store.count_numbers())
        self.database_size.set(store.size_bytes())
        usage = self.disk_usage(store.path.parent)
        self.disk_free.set(usage.free)
        self.disk_total.set(usage.total)
        self.log_dir_size.set(log_dir_bytes)
        self._refresh_sync_state(store)
        self.refreshed_at.set(self.clock())

    def _refresh_sync_state(self, store: "Store") -> None:
        """Copy the sync's state keys into the gauges; they survive a restart."""
        authorisation = store.get_state("google.authorisation") or "not_configured"
        self.sync_enabled.set(0 if authorisation == "not_configured" else 1)
        self.google_authorised.set(1 if authorisation == "ok" else 0)
        for key, gauge in (("sync.last_attempt_at", self.sync_last_attempt),
                           ("sync.last_success_at", self.sync_last_success)):
            value = _state_number(store, key)
            if value is not None:
                gauge.set(value)
        failures = _state_number(store, "sync.consecutive_failures")
        if failures is not None:
            self._consecutive_failures = int(failures)
            self.sync_failures.set(self._consecutive_failures)


def _state_number(store: "Store", key: str) -> float | None:
    text = store.get_state(key)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        logger.warning("state value is not a number", extra={"key": key, "value": text[:40]})
        return None


def build_metrics(clock: Callable[[], float] = time.time,
                  timer: Callable[[], float] = time.perf_counter,
                  disk_usage: Callable[[Path], Any] = shutil.disk_usage,
                  proc_dir: str = "/proc") -> Metrics:
    """Make a new registry with every appliance metric and the process collector.

    ``proc_dir`` is where the process collector reads ``stat``, ``limits`` and
    ``fd``; on systems without /proc it exports nothing.
    """
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(proc=proc_dir, registry=registry)
    return Metrics(registry, clock=clock, timer=timer, disk_usage=disk_usage)


class MetricsThread:
    """Background thread named ``metrics`` that refreshes the I/O gauges."""

    name = "metrics"

    def __init__(self, metrics: Metrics, store: "Store", interval_s: float,
                 log_dir_bytes: Callable[[], int] = lambda: 0) -> None:
        self.metrics = metrics
        self.store = store
        self.interval_s = interval_s
        self.log_dir_bytes = log_dir_bytes
        self.last_refresh_ok: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def refresh_once(self) -> bool:
        """Refresh the gauges now; log a failure once and its recovery once."""
        try:
            self.metrics.refresh(self.store, self.log_dir_bytes())
        except Exception:  # the thread's boundary: keep refreshing on later passes
            if self.last_refresh_ok is not False:
                logger.exception("metrics refresh failed")
            self.last_refresh_ok = False
            return False
        if self.last_refresh_ok is False:
            logger.info("metrics refresh recovered")
        self.last_refresh_ok = True
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh_once()
            self._stop.wait(self.interval_s)
