"""A small in-process event bus between the parts that act and the parts that watch.

Sources and the directory emit events; metrics, notifications and health subscribe.
Subscribers run synchronously in the emitting thread, so they must be quick; an
exception in one is logged and never reaches the emitter.

Event names and their fields:

- ``sync.started``: run_id, kind (full | incremental), source
- ``sync.finished``: run_id, kind, source, outcome (ok | error), duration_s, added,
  updated, deleted, error (text or None), started_at and finished_at (Unix seconds)
- ``google.call``: method (such as connections.list), status (HTTP status, or 0 when
  no answer came), duration_s
- ``google.retry``: method, reason (such as 429 or 503 or timeout)
- ``google.token_refresh``: outcome (ok | error)
- ``google.authorisation``: authorised (bool), reason (text)
- ``directory.search``: kind (name | number | keypad), duration_s, results
- ``directory.page``: object (CiscoIPPhoneMenu, CiscoIPPhoneDirectory, ...)
- ``import.finished``: run_id, path, read, imported, skipped, outcome (ok | error)
- ``notify.sent``: channel (webhook | email), outcome (ok | error)
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Callable

logger = logging.getLogger(__name__)

Subscriber = Callable[..., None]


class Events:
    """Synchronous publish and subscribe by event name."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[Subscriber]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, name: str, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers[name].append(subscriber)

    def emit(self, name: str, **fields: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(name, ()))
        for subscriber in subscribers:
            try:
                subscriber(**fields)
            except Exception:
                logger.exception("event subscriber failed", extra={"event": name})
