"""Health checks of the appliance, in the shape of the IETF health-check draft.

``HealthChecker.report`` runs every check and returns a ``HealthReport`` whose
status is the worst of its checks: ``pass`` and ``warn`` mean the phones are
served (HTTP 200), ``fail`` means an admin must act (HTTP 503). Results are
cached for ``[health] cache_seconds`` behind a lock, so callers arriving together
share one run. ``RequestHistory`` keeps the last hour of request counts and
latencies for the health page's charts.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from appliance import __version__
from appliance.logs import LogStatus, log_status

if TYPE_CHECKING:
    from appliance.config import Config
    from appliance.store import Store
    from appliance.web.middleware import RequestRecord

logger = logging.getLogger(__name__)

PASS, WARN, FAIL = "pass", "warn", "fail"
_SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}

MIB = 1024 * 1024
# A read of a few rows that takes longer than this means the disk or a lock is
# holding the database up, and phones will notice it.
SLOW_DATABASE_MS = 1000.0
SYNC_RUNS_SHOWN = 10


def worst_status(statuses: Iterable[str]) -> str:
    """Return the most severe of the given statuses, ``pass`` when there are none."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)


def iso_time(unix_s: float) -> str:
    """Format Unix seconds as an ISO 8601 UTC time with a Z suffix."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def google_authorisation(store: "Store") -> str:
    """Return the sync's ``google.authorisation`` state: ok, needed or not_configured."""
    return store.get_state("google.authorisation") or "not_configured"


@dataclass
class Check:
    """The result of one check, keyed ``component:measurement`` in the report."""

    component: str
    measurement: str
    status: str
    observed_value: Any = None
    observed_unit: str | None = None
    output: str = ""
    component_type: str = "component"
    time: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.component}:{self.measurement}"

    def to_json(self) -> dict[str, Any]:
        """Render the check as one element of the draft's ``checks`` arrays."""
        data: dict[str, Any] = {"componentType": self.component_type,
                                "observedValue": self.observed_value}
        if self.observed_unit:
            data["observedUnit"] = self.observed_unit
        data["status"] = self.status
        data["time"] = iso_time(self.time)
        if self.output:
            data["output"] = self.output
        return data


@dataclass
class HealthReport:
    """Every check's result with the overall status."""

    checks: list[Check]
    time: float
    version: str = __version__
    status: str = field(init=False)

    def __post_init__(self) -> None:
        self.status = worst_status(check.status for check in self.checks)

    @property
    def http_status(self) -> int:
        return 503 if self.status == FAIL else 200

    @property
    def output(self) -> str:
        """Join the outputs of the checks that did not pass."""
        return "; ".join(check.output for check in self.checks
                         if check.status != PASS and check.output)

    def to_json(self) -> dict[str, Any]:
        """Render the report as an ``application/health+json`` document."""
        data: dict[str, Any] = {
            "status": self.status,
            "version": self.version,
            "serviceId": "phonebook-appliance",
            "description": "Phonebook Appliance: company contacts for Cisco IP phones",
        }
        if self.status != PASS:
            data["output"] = self.output
        data["checks"] = {check.key: [check.to_json()] for check in self.checks}
        return data


@dataclass
class SyncRun:
    """One row of the sync's run record, as the health page shows it."""

    run_id: str
    kind: str
    started_at: float
    finished_at: float | None
    outcome: str
    added: int
    updated: int
    deleted: int
    error: str


class HealthChecker:
    """Run the appliance's checks against the store, the threads and the disk.

    ``threads`` returns the background worker objects (each with ``name`` and
    ``is_alive()``), and ``log_status`` returns the logging setup's LogStatus.
    """

    def __init__(self, store: "Store", config: "Config",
                 threads: Callable[[], Iterable[Any]] = list,
                 log_status: Callable[[], "LogStatus"] = log_status,
                 clock: Callable[[], float] = time.time,
                 disk_usage: Callable[[Any], Any] = shutil.disk_usage) -> None:
        self.store = store
        self.config = config
        self.threads = threads
        self.log_status = log_status
        self.clock = clock
        self.disk_usage = disk_usage
        self.cache_s = config.health.cache_seconds
        self.warn_age_s = config.health.freshness_warn_minutes * 60
        self.fail_age_s = config.health.freshness_fail_minutes * 60
        self.disk_warn_bytes = config.health.disk_warn_free_mib * MIB
        self.disk_fail_bytes = config.health.disk_fail_free_mib * MIB
        self.integrity: Check | None = None
        self._lock = threading.Lock()
        self._cached: HealthReport | None = None
        self._cached_at = float("-inf")

    # -- running --------------------------------------------------------------

    def check_integrity(self) -> Check:
        """Run SQLite's quick check once; later reports repeat its result."""
        now = self.clock()
        try:
            result = self.store.integrity_check(quick=True)
        except sqlite3.Error as error:
            result = f"quick check failed: {error}"
        if result == "ok":
            check = Check("database", "integrity", PASS, "ok", None, "", "datastore", now)
        else:
            logger.error("database integrity check failed", extra={"result": result[:200]})
            check = Check("database", "integrity", FAIL, result[:200], None,
                          "the database failed SQLite's quick check: restore a backup or "
                          "delete it and sync again", "datastore", now)
        self.integrity = check
        return check

    def report(self) -> HealthReport:
        """Return the cached report, or run the checks when it is older than the TTL."""
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached_at >= self.cache_s:
                self._cached = self.run_checks()
                self._cached_at = now
            return self._cached

    def run_checks(self) -> HealthReport:
        """Run every check now, without the cache."""
        now = self.clock()
        authorisation = google_authorisation(self.store)
        is_google = authorisation != "not_configured"
        checks = [self._database(now)]
        if self.integrity is not None:
            checks.append(self.integrity)
        checks += [self._contacts(now), self._freshness(now, is_google),
                   self._authorisation(now, authorisation)]
        if is_google:
            checks.append(self._thread_alive(now, "sync-scheduler", "scheduler", FAIL))
        checks += [self._thread_alive(now, "metrics", "metrics", WARN),
                   self._disk(now), self._logs(now)]
        if is_google:
            checks.append(self._last_sync_error(now))
        self._log_changes(checks)
        return HealthReport(checks=checks, time=now)

    def _log_changes(self, checks: list[Check]) -> None:
        """Log each check's move away from pass once, and its recovery once."""
        previous = {} if self._cached is None else {
            check.key: check.status for check in self._cached.checks}
        for check in checks:
            before = previous.get(check.key, PASS)
            if check.status == before:
                continue
            extra = {"check": check.key, "status": check.status, "previous": before,
                     "detail": check.output}
            if check.status == PASS:
                logger.info("health check recovered", extra=extra)
            else:
                logger.warning("health check not passing", extra=extra)

    # -- the checks -----------------------------------------------------------

    def _database(self, now: float) -> Check:
        started = time.perf_counter()
        try:
            self.store.reader().execute("SELECT count(*) FROM state").fetchone()
        except sqlite3.Error as error:
            return Check("database", "responseTime", FAIL, None, "ms",
                         f"the database cannot be read: {error}", "datastore", now)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        if elapsed_ms >= SLOW_DATABASE_MS:
            return Check("database", "responseTime", WARN, elapsed_ms, "ms",
                         "a database read took over a second", "datastore", now)
        return Check("database", "responseTime", PASS, elapsed_ms, "ms", "", "datastore", now)

    def _contacts(self, now: float) -> Check:
        try:
            count = self.store.count_contacts()
        except sqlite3.Error as error:
            return Check("contacts", "count", FAIL, None, None,
                         f"contacts cannot be counted: {error}", "datastore", now)
        if count == 0:
            return Check("contacts", "count", WARN, 0, None,
                         "the store has no contacts, so phones see an empty directory",
                         "datastore", now)
        return Check("contacts", "count", PASS, count, None, "", "datastore", now)

    def _freshness(self, now: float, is_google: bool) -> Check:
        if not is_google:
            return self._freshness_without_google(now)
        last_success = _state_float(self.store, "sync.last_success_at")
        if last_success is None:
            return Check("data", "freshness", WARN, None, "s",
                         "no Google sync has succeeded yet", "component", now)
        age_s = max(0.0, round(now - last_success, 1))
        if age_s >= self.fail_age_s:
            status, output = FAIL, f"the last successful Google sync was {_age_text(age_s)} ago"
        elif age_s >= self.warn_age_s:
            status, output = WARN, f"the last successful Google sync was {_age_text(age_s)} ago"
        else:
            status, output = PASS, ""
        return Check("data", "freshness", status, age_s, "s", output, "component", now)

    def _freshness_without_google(self, now: float) -> Check:
        # Without Google, contacts change only when an admin imports a file, so an
        # old import is not stale data; only the bundled samples deserve a warning.
        imported_at = _state_float(self.store, "import.last_at")
        if imported_at is not None:
            age_s = max(0.0, round(now - imported_at, 1))
            return Check("data", "freshness", PASS, age_s, "s",
                         "Google sync is not configured; contacts come from the file "
                         f"imported at {iso_time(imported_at)}", "component", now)
        if self._has_only_samples():
            return Check("data", "freshness", WARN, None, "s",
                         "Google sync is not configured and only the bundled sample "
                         "contacts are loaded: import a contacts file or authorise Google",
                         "component", now)
        return Check("data", "freshness", PASS, None, "s",
                     "Google sync is not configured", "component", now)

    def _has_only_samples(self) -> bool:
        reader = self.store.reader()
        has_samples = reader.execute(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE source = 'sample')").fetchone()[0]
        has_others = reader.execute(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE source != 'sample')").fetchone()[0]
        return bool(has_samples) and not has_others

    def _authorisation(self, now: float, authorisation: str) -> Check:
        if authorisation in ("ok", "not_configured"):
            output = "" if authorisation == "ok" else "Google sync is not configured"
            return Check("google", "authorisation", PASS, authorisation, None, output,
                         "component", now)
        if authorisation == "needed":
            return Check("google", "authorisation", FAIL, authorisation, None,
                         "Google authorisation is needed: an admin must authorise the "
                         "appliance at /setup", "component", now)
        return Check("google", "authorisation", WARN, authorisation[:40], None,
                     "the Google authorisation state is not known", "component", now)

    def _thread_alive(self, now: float, name: str, component: str, status: str) -> Check:
        worker = next((item for item in self.threads() if item.name == name), None)
        if worker is not None and worker.is_alive():
            return Check(component, "alive", PASS, True, None, "", "component", now)
        return Check(component, "alive", status, False, None,
                     f"the {name} thread is not running: restart the appliance",
                     "component", now)

    def _disk(self, now: float) -> Check:
        try:
            free = self.disk_usage(self.store.path.parent).free
        except OSError as error:
            return Check("disk", "free", FAIL, None, "bytes",
                         f"the data folder's disk cannot be read: {error.strerror or error}",
                         "system", now)
        free_mib = free // MIB
        if free < self.disk_fail_bytes:
            status = FAIL
        elif free < self.disk_warn_bytes:
            status = WARN
        else:
            return Check("disk", "free", PASS, free, "bytes", "", "system", now)
        return Check("disk", "free", status, free, "bytes",
                     f"only {free_mib} MiB free on the data folder's disk", "system", now)

    def _logs(self, now: float) -> Check:
        status = self.log_status()
        if status.directory is None:
            return Check("logs", "writing", PASS, None, None,
                         "log files are off, so logs go to standard output only",
                         "component", now)
        is_writing = status.status == PASS
        return Check("logs", "writing", PASS if is_writing else WARN, is_writing, None,
                     status.output, "component", now)

    def _last_sync_error(self, now: float) -> Check:
        error = (self.store.get_state("sync.last_error") or "").strip()
        failures = int(_state_float(self.store, "sync.consecutive_failures") or 0)
        if not error and failures == 0:
            return Check("sync", "lastError", PASS, "", None, "", "component", now)
        if failures <= 1:
            runs = "the last Google sync run"
        else:
            runs = f"the last {failures} Google sync runs"
        return Check("sync", "lastError", WARN, error[:200], None,
                     f"{runs} failed: {error[:200]}", "component", now)

    # -- readiness and the sync record ----------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """Tell whether the store answers and holds contacts, with the reason if not."""
        try:
            has_contacts = self.store.reader().execute(
                "SELECT EXISTS (SELECT 1 FROM contacts)").fetchone()[0]
        except sqlite3.Error as error:
            return False, f"the database cannot be read: {error}"
        if not has_contacts:
            return False, "no contacts are loaded yet"
        return True, "ready"

    def recent_sync_runs(self, limit: int = SYNC_RUNS_SHOWN) -> list[SyncRun]:
        """Read the newest sync runs; none when the store has no run record."""
        try:
            rows = self.store.reader().execute(
                "SELECT run_id, kind, started_at, finished_at, outcome, added, updated, "
                "deleted, error FROM sync_runs ORDER BY started_at DESC, id DESC LIMIT ?",
                (limit,)).fetchall()
        except sqlite3.OperationalError:
            return []  # a database from before the run record existed
        return [SyncRun(*row) for row in rows]


def _state_float(store: "Store", key: str) -> float | None:
    text = store.get_state(key)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _age_text(age_s: float) -> str:
    if age_s >= 2 * 86400:
        return f"{age_s / 86400:.0f} days"
    if age_s >= 2 * 3600:
        return f"{age_s / 3600:.0f} hours"
    return f"{age_s / 60:.0f} minutes"


# Routes that monitoring systems poll; the charts show the traffic they watch over.
MONITORING_ROUTES = frozenset({"/metrics", "/health", "/livez", "/readyz"})


class RequestHistory:
    """Per-minute request counts and latencies over the last hour, in memory.

    A ring of 60 one-minute slots; a slot is reset when its minute comes round
    again. Requests to the monitoring routes are left out.
    """

    SLOTS = 60
    # Upper bounds (seconds) used to estimate each minute's 95th percentile.
    BOUNDS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, float("inf"))

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._minutes = [-1] * self.SLOTS
        self._counts = [0] * self.SLOTS
        self._sums = [0.0] * self.SLOTS
        self._buckets = [[0] * len(self.BOUNDS) for _ in range(self.SLOTS)]

    def on_finish(self, record: "RequestRecord") -> None:
        """Add a finished request; a hook for the request middleware."""
        if record.route in MONITORING_ROUTES:
            return
        self.add(record.duration_s)

    def add(self, duration_s: float) -> None:
        minute = int(self.clock() // 60)
        slot = minute % self.SLOTS
        bucket = bisect_left(self.BOUNDS, duration_s)
        with self._lock:
            if self._minutes[slot] != minute:
                self._minutes[slot] = minute
                self._counts[slot] = 0
                self._sums[slot] = 0.0
                self._buckets[slot] = [0] * len(self.BOUNDS)
            self._counts[slot] += 1
            self._sums[slot] += duration_s
            self._buckets[slot][bucket] += 1

    def snapshot(self) -> list[tuple[float, int, float | None, float | None]]:
        """Return the last 60 minutes, oldest first, as (minute start, requests,
        mean seconds, estimated 95th percentile seconds)."""
        current = int(self.clock() // 60)
        rows = []
        with self._lock:
            for minute in range(current - self.SLOTS + 1, current + 1):
                slot = minute % self.SLOTS
                count = self._counts[slot] if self._minutes[slot] == minute else 0
                if count == 0:
                    rows.append((minute * 60.0, 0, None, None))
                    continue
                mean = self._sums[slot] / count
                rows.append((minute * 60.0, count, mean,
                             self._percentile(self._buckets[slot], count, 0.95)))
        return rows

    def _percentile(self, buckets: list[int], count: int, quantile: float) -> float:
        rank = quantile * count
        seen = 0
        for bound, in_bucket in zip(self.BOUNDS, buckets):
            seen += in_bucket
            if seen >= rank:
                return bound if bound != float("inf") else self.BOUNDS[-2]
        return self.BOUNDS[-2]
