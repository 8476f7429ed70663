"""Notifications to the admin by webhook and email when something needs them.

Four problems are watched:

- ``sync_failing``: ``[notify] sync_failures`` Google syncs in a row failed;
- ``authorisation_lost``: Google rejected the stored authorisation;
- ``disk_low``: the data folder's disk has less than ``disk_free_mib`` free;
- ``request_errors``: ``request_errors`` responses with a 5xx status within
  ``request_error_window_minutes``.

A problem is notified when it starts, again at most once per ``repeat_minutes``
while it lasts, and once when it recovers (if its start was notified). The state
is kept in the store, so a restart neither repeats a notification nor forgets a
recovery.

Everything runs on the ``notifier`` thread. Event subscribers and the request hook
only put an item on a queue or append to a deque, so sending never blocks or
breaks serving. A failed send is retried twice, after 30 s and after 2 minutes.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import smtplib
import socket
import sqlite3
import ssl
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, Callable

import requests

from appliance.config import Config
from appliance.errors import StoreError
from appliance.events import Events
from appliance.redaction import redact_text

if TYPE_CHECKING:
    from appliance.store import Store
    from appliance.web.middleware import RequestRecord

logger = logging.getLogger(__name__)

THREAD_NAME = "notifier"
SYNC_FAILING = "sync_failing"
AUTHORISATION_LOST = "authorisation_lost"
DISK_LOW = "disk_low"
REQUEST_ERRORS = "request_errors"
PROBLEMS = (SYNC_FAILING, AUTHORISATION_LOST, DISK_LOW, REQUEST_ERRORS)
TITLES = {
    SYNC_FAILING: "Google sync failing",
    AUTHORISATION_LOST: "Google authorisation lost",
    DISK_LOW: "Disk space low",
    REQUEST_ERRORS: "Requests failing",
}

STATE_KEY_PREFIX = "notify."
# Seconds between two checks of the disk and the request error rate.
CHECK_INTERVAL_S = 30.0
# Waits before the second and third attempt of a failed send.
RETRY_DELAYS_S = (30.0, 120.0)
# Items waiting for the thread; beyond this an event is dropped with a warning,
# because a stuck notifier must not hold memory without bound.
QUEUE_SIZE = 1000
_STOP = object()
_DRAIN = "drain"


@dataclass
class Notification:
    """One message about one problem, for every channel."""

    problem: str
    state: str  # "problem", "reminder" or "resolved"
    subject: str
    text: str


@dataclass
class ProblemState:
    """The state of one problem, kept as JSON in the store."""

    active: bool = False
    detail: str = ""
    since: float | None = None  # Unix seconds when it started
    notified_at: float | None = None  # Unix seconds of the last problem notification
    announced: bool = False  # a notification went out about this occurrence


@dataclass
class _PendingSend:
    notification: Notification
    channel: "Channel"
    attempt: int
    due_at: float


class Channel:
    """A way to reach the admin: ``send`` raises on failure."""

    name = "channel"

    def send(self, notification: Notification) -> None:
        raise NotImplementedError


class WebhookChannel(Channel):
    """POST ``{"text": ...}``, the body Slack and Microsoft Teams incoming webhooks take."""

    name = "webhook"

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def send(self, notification: Notification) -> None:
        response = requests.post(self.url, json={"text": notification.text},
                                 timeout=self.timeout_s, allow_redirects=False)
        if response.status_code >= 300:
            raise NotificationError(f"HTTP {response.status_code}")


class EmailChannel(Channel):
    """Send email over SMTP with STARTTLS, TLS or no encryption, and optional login."""

    name = "email"

    def __init__(self, config: Config) -> None:
        settings = config.notify
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.sender = settings.email_from
        self.recipients = list(settings.email_to)
        self.timeout_s = settings.timeout_seconds
        self.ca_file = settings.smtp_ca_file

    def _tls_context(self) -> ssl.SSLContext:
        if self.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.ca_file))
        return ssl.create_default_context()

    def send(self, notification: Notification) -> None:
        message = EmailMessage()
        message["Subject"] = notification.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(notification.text)

        if self.security == "tls":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                      context=self._tls_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            if self.security == "starttls":
                client.starttls(context=self._tls_context())
            if self.user:
                client.login(self.user, self.password)
            client.send_message(message)


class NotificationError(Exception):
    """A channel responded, but not with success."""


def build_channels(config: Config) -> list[Channel]:
    """Return the channels ``[notify]`` configures.

    Loading the config already rejected email settings that are only partly set.
    """
    settings = config.notify
    channels: list[Channel] = []
    if settings.webhook_url:
        channels.append(WebhookChannel(settings.webhook_url, settings.timeout_seconds))
    if settings.smtp_host:
        channels.append(EmailChannel(config))
    return channels


class Notifier:
    """The ``notifier`` background thread: watches problems and sends notifications."""

    name = THREAD_NAME

    def __init__(self, config: Config, events: Events, store: "Store", *,
                 channels: list[Channel] | None = None,
                 appliance_url: Callable[[], str] = lambda: "",
                 clock: Callable[[], float] = time.time,
                 disk_free_bytes: Callable[[], int] | None = None,
                 check_interval_s: float = CHECK_INTERVAL_S,
                 retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        settings = config.notify
        self.config = config
        self.store = store
        self.channels = build_channels(config) if channels is None else channels
        self.appliance_name = settings.name or socket.gethostname()
        self.appliance_url = appliance_url
        self.clock = clock
        self.disk_free_bytes = disk_free_bytes or self._data_disk_free_bytes
        self.check_interval_s = check_interval_s
        self.retry_delays_s = retry_delays_s
        self.events = events
        self.repeat_s = settings.repeat_minutes * 60.0
        self.sync_failures_limit = settings.sync_failures
        self.disk_free_limit_bytes = settings.disk_free_mib * 1024 * 1024
        self.request_errors_limit = settings.request_errors
        self.request_error_window_s = settings.request_error_window_minutes * 60.0

        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self._dropped = 0
        # Times of the latest 5xx responses; appending to a deque is thread-safe.
        self._error_times: deque[float] = deque(maxlen=max(1, settings.request_errors))
        self._states: dict[str, ProblemState] = {}
        self._sync_failures = 0
        self._pending: list[_PendingSend] = []
        self._next_check_at = 0.0
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

        events.subscribe("sync.finished", self._on_sync_finished)
        events.subscribe("google.authorisation", self._on_authorisation)

    # -- the thread ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Ask the thread to end after the send in progress, and wait for it."""
        self._stopping.set()
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the thread checks the stop flag before its next item
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        self._load_states()
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=self._wait_s())
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            try:
                if item is not None and item[0] != _DRAIN:
                    self._handle(*item)
                if self.clock() >= self._next_check_at:
                    self._next_check_at = self.clock() + self.check_interval_s
                    self._check_disk()
                    self._check_request_errors()
                self._send_due()
            except Exception:  # the thread boundary: one bad step must not end it
                logger.exception("notifier step failed")
            if item is not None and item[0] == _DRAIN:
                item[1].set()

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until the thread has handled every queued item and the checks now due.

        Returns False when the thread did not get there within ``timeout_s``.
        """
        done = threading.Event()
        try:
            self._queue.put((_DRAIN, done), timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def _wait_s(self) -> float:
        due = [self._next_check_at] + [pending.due_at for pending in self._pending]
        return min(max(0.0, min(due) - self.clock()), self.check_interval_s)

    # -- inputs, called from other threads ------------------------------------------

    def record_request(self, record: "RequestRecord") -> None:
        """Count a finished request that ended in a 5xx; a middleware ``on_finish`` hook."""
        if record.status >= 500 and self.request_errors_limit:
            self._error_times.append(self.clock())

    def _on_sync_finished(self, **fields: Any) -> None:
        self._enqueue("sync.finished", fields)

    def _on_authorisation(self, **fields: Any) -> None:
        self._enqueue("google.authorisation", fields)

    def _enqueue(self, name: str, fields: dict) -> None:
        try:
            self._queue.put_nowait((name, fields))
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1:
                logger.warning("notifier queue full, events dropped", extra={
                    "event": name, "queue_size": QUEUE_SIZE})

    # -- problems ------------------------------------------------------------------

    def _handle(self, name: str, fields: dict) -> None:
        if name == "sync.finished":
            if fields.get("outcome") == "ok":
                self._sync_failures = 0
                self._resolve(SYNC_FAILING)
            else:
                self._sync_failures += 1
                if self.sync_failures_limit and self._sync_failures >= self.sync_failures_limit:
                    error = _short(fields.get("error") or "no error text")
                    count = self._sync_failures
                    self._raise(SYNC_FAILING, f"{count} sync{'s' if count != 1 else ''} in a "
                                              f"row failed. Last error: {error}")
        elif name == "google.authorisation":
            if fields.get("authorised"):
                self._resolve(AUTHORISATION_LOST)
            else:
                reason = _short(fields.get("reason") or "no reason given")
                self._raise(AUTHORISATION_LOST,
                            f"Google rejected the stored authorisation ({reason}). The "
                            "directory keeps serving the last synced contacts. Authorise "
                            "again on the setup page.")

    def _check_disk(self) -> None:
        if not self.disk_free_limit_bytes:
            return
        try:
            free = self.disk_free_bytes()
        except OSError as error:
            logger.warning("disk space not readable", extra={
                "path": str(self.config.storage.data_dir), "error": str(error)})
            return
        if free < self.disk_free_limit_bytes:
            self._raise(DISK_LOW, f"Only {free // (1024 * 1024)} MiB free on the disk of "
                                  f"{self.config.storage.data_dir} (limit "
                                  f"{self.disk_free_limit_bytes // (1024 * 1024)} MiB).")
        else:
            self._resolve(DISK_LOW)

    def _data_disk_free_bytes(self) -> int:
        return shutil.disk_usage(self.config.storage.data_dir).free

    def _check_request_errors(self) -> None:
        if not self.request_errors_limit:
            return
        since = self.clock() - self.request_error_window_s
        recent = sum(1 for moment in list(self._error_times) if moment >= since)
        minutes = self.config.notify.request_error_window_minutes
        if recent >= self.request_errors_limit:
            self._raise(REQUEST_ERRORS, f"At least {recent} requests ended in a server "
                                        f"error within {minutes} minutes.")
        else:
            self._resolve(REQUEST_ERRORS)

    def _raise(self, problem: str, detail: str) -> None:
        state = self._states.setdefault(problem, ProblemState())
        now = self.clock()
        starting = not state.active
        if starting:
            state.active, state.since, state.announced = True, now, False
            logger.warning("problem started", extra={"problem": problem, "detail": detail})
        state.detail = detail
        if state.notified_at is not None and now - state.notified_at < self.repeat_s:
            self._save(problem)  # notified recently: at most once per repeat period
            return
        kind = "problem" if starting or not state.announced else "reminder"
        state.notified_at, state.announced = now, True
        self._save(problem)
        self._notify(problem, kind, detail)

    def _resolve(self, problem: str) -> None:
        state = self._states.get(problem)
        if state is None or not state.active:
            return
        announced = state.announced
        duration_s = self.clock() - state.since if state.since else None
        state.active, state.announced, state.detail, state.since = False, False, "", None
        self._save(problem)
        logger.info("problem resolved", extra={"problem": problem, "duration_s": duration_s})
        if announced:
            self._notify(problem, "resolved", _resolved_text(problem, duration_s))

    # -- sending -------------------------------------------------------------------

    def _notify(self, problem: str, kind: str, detail: str) -> None:
        label = {"problem": "PROBLEM", "reminder": "STILL A PROBLEM", "resolved": "RESOLVED"}[kind]
        subject = f"[{label}] {self.appliance_name}: {TITLES[problem]}"
        lines = [subject, redact_text(detail)]
        url = self.appliance_url()
        if url:
            lines.append(f"Status: {url}/health")
        notification = Notification(problem, kind, subject, "\n".join(lines))
        for channel in self.channels:
            self._pending.append(_PendingSend(notification, channel, 1, self.clock()))
        self._send_due()

    def _send_due(self) -> None:
        now = self.clock()
        due = [pending for pending in self._pending if pending.due_at <= now]
        self._pending = [pending for pending in self._pending if pending.due_at > now]
        for pending in due:
            self._send(pending)

    def _send(self, pending: _PendingSend) -> None:
        channel, notification = pending.channel, pending.notification
        fields = {"channel": channel.name, "problem": notification.problem,
                  "state": notification.state, "attempt": pending.attempt}
        try:
            channel.send(notification)
        except (requests.RequestException, smtplib.SMTPException, OSError,
                NotificationError) as error:
            retry = pending.attempt <= len(self.retry_delays_s)
            logger.warning("notification not sent", extra={
                **fields, "error": _describe_send_error(error), "will_retry": retry})
            self.events.emit("notify.sent", channel=channel.name, outcome="error")
            if retry:
                delay = self.retry_delays_s[pending.attempt - 1]
                self._pending.append(_PendingSend(notification, channel, pending.attempt + 1,
                                                  self.clock() + delay))
            return
        except Exception:  # a bug in a channel: log its stack, keep the other sends going
            logger.exception("notification send crashed", extra=fields)
            self.events.emit("notify.sent", channel=channel.name, outcome="error")
            return
        logger.info("notification sent", extra=fields)
        self.events.emit("notify.sent", channel=channel.name, outcome="ok")

    # -- stored state ----------------------------------------------------------------

    def _load_states(self) -> None:
        for problem in PROBLEMS:
            text = self._read_state(STATE_KEY_PREFIX + problem)
            if not text:
                continue
            try:
                self._states[problem] = ProblemState(**json.loads(text))
            except (ValueError, TypeError):
                logger.warning("stored notification state ignored", extra={"problem": problem})
        failures = self._read_state("sync.consecutive_failures")
        if failures and failures.isdigit():
            self._sync_failures = int(failures)

    def _read_state(self, key: str) -> str | None:
        try:
            return self.store.get_state(key)
        except (StoreError, sqlite3.Error) as error:
            logger.warning("notification state not readable", extra={"error": str(error)})
        return None

    def _save(self, problem: str) -> None:
        state = self._states[problem]
        try:
            self.store.set_state(STATE_KEY_PREFIX + problem, json.dumps(asdict(state)))
        except (StoreError, sqlite3.Error) as error:
            # A full or read-only disk must not stop the notifications themselves.
            logger.warning("notification state not stored", extra={
                "problem": problem, "error": str(error)})

    def problem_states(self) -> dict[str, ProblemState]:
        """Return a copy of the current problem states (for tests and status pages)."""
        return {problem: ProblemState(**asdict(state))
                for problem, state in self._states.items()}


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _resolved_text(problem: str, duration_s: float | None) -> str:
    lasted = f" after {_duration_text(duration_s)}" if duration_s is not None else ""
    return {
        SYNC_FAILING: f"Google sync works again{lasted}.",
        AUTHORISATION_LOST: f"Google authorisation works again{lasted}.",
        DISK_LOW: f"Disk space is back above the limit{lasted}.",
        REQUEST_ERRORS: f"Server errors are back below the limit{lasted}.",
    }[problem]


def _duration_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _describe_send_error(error: BaseException) -> str:
    """Return the error's type and, where safe, its text.

    Errors from requests repeat the webhook URL, whose path may be its secret,
    so only their type is kept; SMTP replies and HTTP statuses are kept.
    """
    if isinstance(error, requests.RequestException):
        return type(error).__name__
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error.decode("utf-8", "replace") if isinstance(
            error.smtp_error, bytes) else str(error.smtp_error)
        return f"{type(error).__name__}: {error.smtp_code} {reply}"
    return f"{type(error).__name__}: {error}"
