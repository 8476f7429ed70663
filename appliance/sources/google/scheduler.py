"""The background thread that runs a Google sync every few minutes."""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING

from appliance.config import Config
from appliance.errors import StoreError, SyncError
from appliance.sources.google import auth
from appliance.sources.google.sync import GoogleSync, SyncBusy
from appliance.store import Store

if TYPE_CHECKING:
    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)

THREAD_NAME = "sync-scheduler"
# Every wait varies by up to this share of the interval, so appliances that
# started together do not call Google in step.
JITTER_SHARE = 0.1
# The first sync runs soon after start, so a new box fills its directory early.
FIRST_SYNC_DELAY_S = 5.0


class SyncScheduler:
    """Run ``sync.run()`` every ``interval_s`` with jitter, and on ``trigger()``."""

    name = THREAD_NAME

    def __init__(self, sync: GoogleSync, interval_s: float,
                 first_delay_s: float = FIRST_SYNC_DELAY_S) -> None:
        self.sync = sync
        self.interval_s = interval_s
        self.first_delay_s = first_delay_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._request_id: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._random = random.Random()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the loop to end, cut a retry wait short, and wait for the thread."""
        self._stopping.set()
        self.sync.stop_event.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def trigger(self, request_id: str | None = None) -> None:
        """Run a sync as soon as the thread is free; ``request_id`` goes to Google."""
        with self._lock:
            self._request_id = request_id
        self._wake.set()

    def next_delay_s(self) -> float:
        spread = self.interval_s * JITTER_SHARE
        return self.interval_s + self._random.uniform(-spread, spread)

    def _loop(self) -> None:
        delay = self.first_delay_s
        while not self._stopping.is_set():
            self._wake.wait(delay)
            if self._stopping.is_set():
                break
            with self._lock:
                request_id, self._request_id = self._request_id, None
                self._wake.clear()
            self._run_once(request_id)
            delay = self.next_delay_s()

    def _run_once(self, request_id: str | None) -> None:
        try:
            self.sync.run(request_id=request_id)
        except SyncBusy:
            logger.info("sync skipped", extra={"reason": "another sync is running"})
        except SyncError as error:
            logger.error("sync failed to start", extra={"error": str(error)})
        except Exception:  # the thread boundary: keep the scheduler alive
            logger.exception("sync scheduler run failed")


def initial_authorisation_state(config: Config, store: Store) -> None:
    """Write ``google.authorisation`` for a state the last sync could not know.

    Not configured gives ``not_configured``; an OAuth client without stored
    credentials gives ``needed``. Otherwise the last sync's verdict stays, and a
    box that was not configured before counts as ``ok`` until its first sync
    (a few seconds after start) reports otherwise.
    """
    current = store.get_state("google.authorisation")
    if not auth.is_configured(config):
        state = "not_configured"
    elif not auth.uses_service_account(config) and not auth.credentials_path(config).exists():
        state = "needed"
    elif current in (None, "not_configured"):
        state = "ok"
    else:
        return
    if state != current:
        try:
            store.set_state("google.authorisation", state)
        except StoreError as error:
            # A read-only or full disk must not stop the directory from serving.
            logger.error("authorisation state not stored", extra={"error": str(error)})


def attach_google(appliance: "Appliance") -> None:
    """Give ``appliance`` its Google sync and scheduler thread when Google is configured."""
    config = appliance.config
    initial_authorisation_state(config, appliance.store)
    if not auth.is_configured(config):
        return
    appliance.google_sync = GoogleSync(config, appliance.store, appliance.events)
    appliance.sync_scheduler = SyncScheduler(
        appliance.google_sync, config.google.sync_interval_minutes * 60.0)
    appliance.threads.append(appliance.sync_scheduler)
