"""Logging setup: JSON lines on the console and in rotated files, secrets masked.

``setup_logging(config)`` runs once at startup, before waitress starts, and puts
these handlers on the root logger, so every logger (``appliance.*``, ``waitress``,
``waitress.queue``, libraries, Python warnings) goes through them:

- the console, on standard output, in ``[logging] format`` json or text;
- in ``[logging] dir``: ``app.log`` (every line at ``[logging] level`` and up, except
  access lines), ``errors.log`` (ERROR and up) and ``access.log`` (one line per HTTP
  request, from the ``appliance.web.access`` logger).

Every handler first adds ``request_id`` and ``run_id`` from ``appliance.context`` and
then masks secrets (``appliance.redaction``). ``log_status()`` reports to the health
check whether the files are being written.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO
from urllib.parse import parse_qsl

from pythonjsonlogger.json import JsonFormatter

from appliance import context
from appliance.config import Config
from appliance.logfiles import FILE_RETRY_INTERVAL_S, LogDirectory, RotatingLogFile, WriteState
from appliance.redaction import RedactionFilter, register_config_secrets

if TYPE_CHECKING:
    from appliance.web.middleware import RequestRecord

ACCESS_LOGGER = "appliance.web.access"
APP_LOG = "app.log"
ERRORS_LOG = "errors.log"
ACCESS_LOG = "access.log"
MIB = 1024 * 1024

# Rotation periods the handler accepts, as written in [logging] when.
WHEN_CHOICES = ("s", "m", "h", "d", "midnight", "w0", "w1", "w2", "w3", "w4", "w5", "w6")

# Prometheus scrapes every few seconds; their access lines are DEBUG, so they stay
# out of access.log unless [logging] level is debug.
QUIET_PATH_PREFIXES = ("/metrics",)
# Cisco phones append ?name=SEP<MAC> (the device name) to service URLs. Other
# "name" parameters, such as a search form's, are not device names.
_DEVICE_NAME = re.compile(r"SEP[0-9A-Fa-f]{12}")
_FIELD_MAX_CHARS = 256

WAITRESS_QUEUE_LOGGER = "waitress.queue"
# At most one "Task queue depth" warning a minute; the next one counts the rest.
QUEUE_WARNING_INTERVAL_S = 60.0

_access_logger = logging.getLogger(ACCESS_LOGGER)

_FIELD_NAMES = {"levelname": "level", "name": "logger", "exc_info": "exception",
                "stack_info": "stack"}


def format_timestamp(created: float) -> str:
    """Return ISO 8601 UTC with milliseconds, such as 2026-12-04T16:13:00.123Z."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created * 1000) % 1000:03d}Z"


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: timestamp, level, logger, message, IDs, then extras.

    ``request_id`` and ``run_id`` are left out when they are not set. The line is
    kept on the record, so the console and a file format each record once.
    """

    def __init__(self) -> None:
        super().__init__(["levelname", "name", "message", "request_id", "run_id"],
                         rename_fields=_FIELD_NAMES)

    def format(self, record: logging.LogRecord) -> str:
        line = record.__dict__.get("_json_line")
        if line is None:
            line = super().format(record)
            record._json_line = line
        return line

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["timestamp"] = format_timestamp(record.created)
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key in ("request_id", "run_id"):
            if log_data.get(key) is None:
                log_data.pop(key, None)
        return log_data


class TextLineFormatter(logging.Formatter):
    """Human-readable lines: time, level, logger, message, then key=value extras."""

    _SKIP = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
        "message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = (f"{format_timestamp(record.created)} {record.levelname:<7} {record.name}: "
                f"{record.getMessage()}")
        extras = [f"{key}={_text_value(value)}" for key, value in record.__dict__.items()
                  if key not in self._SKIP and not key.startswith("_") and value is not None]
        if extras:
            line += " " + " ".join(extras)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(character.isspace() or character in "\"=" for character in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class ContextFilter(logging.Filter):
    """Add the current request and run IDs to every record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = context.request_id.get()
        if getattr(record, "run_id", None) is None:
            record.run_id = context.run_id.get()
        return True


class _LoggerFilter(logging.Filter):
    """Pass only the records of one logger (and its children), or all but them."""

    def __init__(self, name: str, exclude: bool) -> None:
        super().__init__()
        self.prefix = name
        self.exclude = exclude

    def filter(self, record: logging.LogRecord) -> bool:
        matches = record.name == self.prefix or record.name.startswith(self.prefix + ".")
        return matches != self.exclude


class RepeatLimitFilter(logging.Filter):
    """Pass one record per ``interval_s`` seconds and count those held back meanwhile.

    The next record that passes carries that count as ``repeats_suppressed``.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._next_at: float | None = None
        self._suppressed = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        with self._lock:
            if self._next_at is not None and now < self._next_at:
                self._suppressed += 1
                return False
            self._next_at = now + self.interval_s
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            record.repeats_suppressed = suppressed
        return True


@dataclass(frozen=True)
class LogStatus:
    """Whether log lines reach their files, in the health check's terms."""

    status: str  # "pass" or "warn": logging never stops serving, so never "fail"
    output: str  # why it warns; empty on pass
    directory: str | None  # None when log files are off
    fallback_since: float | None  # Unix seconds when writing to the files failed
    fallback_records: int  # records a log file could not take
    dir_size_bytes: int


class LoggingSetup:
    """The handlers ``setup_logging`` installed, so they can be inspected and removed."""

    def __init__(self, handlers: list[logging.Handler], directory: LogDirectory | None,
                 state: WriteState | None, console: logging.Handler | None) -> None:
        self.handlers = handlers
        self.directory = directory
        self.state = state
        self.console = console
        # (logger name, filter) pairs added to loggers other than the root.
        self.logger_filters: list[tuple[str, logging.Filter]] = []

    def status(self) -> LogStatus:
        if self.directory is None or self.state is None:
            return LogStatus("pass", "", None, None, 0, 0)
        size = self.directory.size_bytes()
        if not self.state.is_failing:
            return LogStatus("pass", "", str(self.directory.path), None,
                             self.state.fallback_records, size)
        where = "the console" if self.console is not None else "standard error"
        output = (f"log files in {self.directory.path} cannot be written "
                  f"({self.state.error}); lines go to {where} only")
        return LogStatus("warn", output, str(self.directory.path), self.state.failing_since,
                         self.state.fallback_records, size)

    def close(self) -> None:
        """Flush and remove the handlers, after running compressions finish."""
        global _active
        if self.directory is not None:
            self.directory.wait_idle()
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for name, log_filter in self.logger_filters:
            logging.getLogger(name).removeFilter(log_filter)
        if threading.excepthook is _log_thread_exception:
            threading.excepthook = threading.__excepthook__
        with _setup_lock:
            if _active is self:
                _active = None


_active: LoggingSetup | None = None
_setup_lock = threading.Lock()


def log_status() -> LogStatus:
    """Return whether the log files are being written, for the health check."""
    active = _active
    if active is None:
        return LogStatus("pass", "", None, None, 0, 0)
    return active.status()


def setup_logging(config: Config, *, files: bool = True, console_stream: TextIO | None = None,
                  console_format: str | None = None,
                  retry_interval_s: float = FILE_RETRY_INTERVAL_S) -> LoggingSetup:
    """Install the console and file handlers on the root logger; replace earlier ones.

    ``files=False`` leaves the log files alone: commands other than ``serve`` run
    beside a server that owns them, and two processes rotating one file lose
    lines. ``console_stream`` defaults to standard output and ``console_format``
    (json or text) to ``[logging] format``.
    """
    global _active
    settings = config.logging
    register_config_secrets(config)
    level = logging.getLevelName(settings.level.upper())
    decorate = [ContextFilter(), RedactionFilter()]

    handlers: list[logging.Handler] = []
    console = None
    if settings.console:
        console = logging.StreamHandler(console_stream or sys.stdout)
        console_format = console_format or settings.format
        console.setFormatter(JsonLineFormatter() if console_format == "json"
                             else TextLineFormatter())
        console.setLevel(level)
        handlers.append(console)

    directory = state = None
    if files and settings.dir is not None:
        directory, state, file_handlers = _file_handlers(config, level, console,
                                                         retry_interval_s)
        handlers += file_handlers

    for handler in handlers:
        for log_filter in decorate:
            handler.addFilter(log_filter)
    setup = LoggingSetup(handlers, directory, state, console)
    previous = _active
    if previous is not None:
        previous.close()
    with _setup_lock:
        root = logging.getLogger()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        threading.excepthook = _log_thread_exception
        _limit_queue_warnings(setup)
        _active = setup
    if directory is not None:
        _probe_directory(directory, [h for h in handlers if isinstance(h, RotatingLogFile)])
    return setup


def _limit_queue_warnings(setup: LoggingSetup) -> None:
    # Waitress warns "Task queue depth is N" for every request that waits for a
    # worker thread (waitress 3.0.2), which is hundreds a second under load, and it
    # logs while it holds the lock every worker thread takes its next task under.
    queue_filter = RepeatLimitFilter(QUEUE_WARNING_INTERVAL_S)
    logging.getLogger(WAITRESS_QUEUE_LOGGER).addFilter(queue_filter)
    setup.logger_filters.append((WAITRESS_QUEUE_LOGGER, queue_filter))


def _file_handlers(config: Config, level: int, console: logging.Handler | None,
                   retry_interval_s: float) -> tuple[LogDirectory, WriteState,
                                                     list[logging.Handler]]:
    settings = config.logging
    directory = LogDirectory(Path(settings.dir).absolute(), settings.max_total_mib * MIB)
    fallback_formatter = JsonLineFormatter()
    fallback = _Fallback(console, fallback_formatter)
    state = WriteState(directory.path, fallback.write, fallback.warn)

    def rotating(name: str, file_level: int, log_filter: logging.Filter | None):
        handler = RotatingLogFile(
            directory.path / name, when=settings.when, interval=settings.interval,
            backup_count=settings.backup_count, max_bytes=settings.max_file_mib * MIB,
            directory=directory, state=state, retry_interval_s=retry_interval_s)
        handler.setFormatter(JsonLineFormatter())
        handler.setLevel(file_level)
        if log_filter is not None:
            handler.addFilter(log_filter)
        return handler

    handlers: list[logging.Handler] = [
        rotating(APP_LOG, level, _LoggerFilter(ACCESS_LOGGER, exclude=True)),
        rotating(ERRORS_LOG, max(level, logging.ERROR), None),
        rotating(ACCESS_LOG, level, _LoggerFilter(ACCESS_LOGGER, exclude=False)),
    ]
    return directory, state, handlers


def _probe_directory(directory: LogDirectory, handlers: list[RotatingLogFile]) -> None:
    """Create the folder and tidy it at startup; report a failure at once."""
    try:
        directory.ensure_exists()
    except OSError as error:
        for handler in handlers:
            handler.mark_failed(error)
        return
    directory.compress_leftovers()
    directory.enforce_cap()


class _Fallback:
    """Standard error, for records a log file could not take.

    Records the console handler already wrote are not repeated, so under systemd
    (which keeps both streams) a line shows once.
    """

    def __init__(self, console: logging.Handler | None, formatter: logging.Formatter) -> None:
        self.console = console
        self.formatter = formatter

    def write(self, record: logging.LogRecord) -> None:
        console = self.console
        if console is not None and record.levelno >= console.level and console.filter(record):
            return
        self._write_line(self.formatter.format(record))

    def warn(self, message: str, fields: dict) -> None:
        record = logging.LogRecord(__name__, logging.WARNING, __file__, 0, message, None, None)
        record.__dict__.update(fields)
        record.request_id = context.request_id.get()
        self._write_line(self.formatter.format(record))

    @staticmethod
    def _write_line(line: str) -> None:
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # standard error is closed too: nothing is left to write to


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """Log an exception that ended a thread, with its stack, instead of printing it."""
    if issubclass(args.exc_type, SystemExit):
        return
    thread_name = args.thread.name if args.thread is not None else None
    logging.getLogger("appliance.threads").error(
        "thread ended by an exception", extra={"thread_name": thread_name},
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def log_access(record: "RequestRecord") -> None:
    """Write the access line of a finished request; a middleware ``on_finish`` hook."""
    environ = record.environ
    quiet = any(record.path == prefix or record.path.startswith(prefix + "/")
                for prefix in QUIET_PATH_PREFIXES)
    level = logging.DEBUG if quiet else logging.INFO
    if not _access_logger.isEnabledFor(level):
        return
    fields = {
        "request_id": record.request_id,
        "method": record.method,
        "route": record.route,
        "path": record.path[:_FIELD_MAX_CHARS],
        "status": record.status,
        "duration_ms": round(record.duration_s * 1000, 2),
        "bytes": record.bytes_sent,
        "client": record.client,
        "phone_model": _header(environ, "HTTP_X_CISCOIPPHONEMODELNAME"),
        "device_name": device_name(environ.get("QUERY_STRING", "")),
        "user_agent": _header(environ, "HTTP_USER_AGENT"),
    }
    _access_logger.log(level, "request", extra={
        key: value for key, value in fields.items() if value is not None})


def device_name(query_string: str) -> str | None:
    """Return the ``name`` a phone appends to service URLs (``SEP001122334455``)."""
    if "name=" not in query_string:
        return None
    for key, value in parse_qsl(query_string, keep_blank_values=False):
        if key == "name" and _DEVICE_NAME.fullmatch(value):
            return value
    return None


def _header(environ: dict, key: str) -> str | None:
    value = environ.get(key)
    return value[:_FIELD_MAX_CHARS] if value else None
