"""The directory: contacts from the store, named, dialled, searched and paged.

``Directory`` keeps an in-memory ``DirectoryIndex`` and rebuilds it when the store
changes, whether this process or another one (``python -m appliance import``)
wrote the change. Requests never wait for a rebuild once an index exists: one
thread rebuilds while the others keep serving the previous index.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from dataclasses import dataclass

from appliance.config import Config
from appliance.directory.dialplan import DialPlan
from appliance.directory.index import BrowseGroup, DirectoryIndex, Entry
from appliance.directory.labels import Label, missing_labels
from appliance.errors import StoreError
from appliance.events import Events
from appliance.store import Store

logger = logging.getLogger(__name__)

SEARCH_KINDS = ("name", "number", "keypad")

__all__ = [
    "SEARCH_KINDS",
    "BrowseGroup",
    "DialPlan",
    "Directory",
    "DirectoryIndex",
    "Entry",
    "Label",
    "Page",
    "paginate",
]


@dataclass(frozen=True)
class Page:
    """One page of a result list; ``number`` counts from 1."""

    items: list
    number: int
    count: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.number < self.count

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def paginate(items: list, page: int, page_size: int) -> Page:
    """Return page ``page`` of ``items``; out of range gives the first or last."""
    count = max(1, math.ceil(len(items) / page_size))
    number = min(max(page, 1), count)
    start = (number - 1) * page_size
    return Page(
        items=items[start : start + page_size],
        number=number,
        count=count,
        total=len(items),
    )


class Directory:
    """The contacts phones see, indexed from the store."""

    def __init__(self, store: Store, config: Config, events: Events) -> None:
        self.store = store
        self.config = config
        self.events = events
        self.dial_plan = DialPlan.from_config(config)
        self._index: DirectoryIndex | None = None
        self._index_version: int | None = None
        self._build_lock = threading.Lock()
        self._version_lock = threading.Lock()
        self._version_connection: sqlite3.Connection | None = None
        self._is_rebuild_failing = False
        self._missing_labels: list[str] = []

    # -- the index ------------------------------------------------------------

    def _data_version(self) -> int:
        """Return SQLite's data_version as seen by one connection of this directory.

        PRAGMA data_version is only comparable on one connection, and it changes
        when any other connection commits. This connection never writes, so it
        sees every change, including imports by another process.
        """
        with self._version_lock:
            if self._version_connection is None:
                self._version_connection = sqlite3.connect(
                    f"file:{self.store.path}?mode=ro", uri=True, check_same_thread=False
                )
            return self._version_connection.execute("PRAGMA data_version").fetchone()[0]

    def index(self) -> DirectoryIndex:
        """Return the current index, rebuilding it first when the store has changed.

        Raises StoreError when the store cannot be read and no index exists yet.
        """
        try:
            version = self._data_version()
        except sqlite3.Error as error:
            return self._stale_or_raise(error)
        current = self._index
        if current is not None and version == self._index_version:
            return current
        if current is None:
            with self._build_lock:
                if self._index is None or self._index_version != version:
                    self._rebuild(version)
            return self._index
        # Another thread may be rebuilding; then this request uses the previous index.
        if self._build_lock.acquire(blocking=False):
            try:
                if self._index_version != version:
                    self._rebuild(version)
            finally:
                self._build_lock.release()
        return self._index

    def _rebuild(self, version: int) -> None:
        started = time.perf_counter()
        try:
            contacts = self.store.load_contacts()
        except (sqlite3.Error, StoreError) as error:
            if self._index is None:
                raise self._unreadable(error) from None
            if not self._is_rebuild_failing:
                logger.warning(
                    "directory kept previous contacts, store read failed",
                    extra={"error": str(error)},
                )
                self._is_rebuild_failing = True
            return
        previous = self._index
        settings = self.config.directory
        index = DirectoryIndex(
            contacts,
            self.dial_plan,
            name_format=settings.name_format,
            sort=settings.sort,
            previous_dial_cache=previous.dial_cache if previous else None,
            with_labels=settings.label_menus,
            only_labels=settings.menu_labels,
        )
        self._index, self._index_version = index, version
        if self._is_rebuild_failing:
            logger.info("directory store read recovered")
            self._is_rebuild_failing = False
        logger.info(
            "directory index built",
            extra={
                "contacts": index.contact_count,
                "entries": len(index.entries),
                "labels": len(index.labels),
                "duration_s": round(time.perf_counter() - started, 3),
            },
        )
        if settings.label_menus:
            missing = missing_labels(settings.menu_labels, index.labels)
            self._warn_missing_labels(missing)

    def _warn_missing_labels(self, missing: list[str]) -> None:
        """Log once when [directory] menu_labels names labels no contact has."""
        if missing == self._missing_labels:
            return
        if missing:
            logger.warning(
                "directory menu labels not found",
                extra={"setting": "[directory] menu_labels", "labels": missing},
            )
        else:
            logger.info("directory menu labels all found")
        self._missing_labels = missing

    def _stale_or_raise(self, error: Exception) -> DirectoryIndex:
        if self._index is None:
            raise self._unreadable(error) from None
        return self._index

    def _unreadable(self, error: Exception) -> StoreError:
        return StoreError(
            f"Database {self.store.path} cannot be read: {error}. Check the "
            "disk and the file's permissions."
        )

    def close(self) -> None:
        """Close the connection that watches the store for changes."""
        with self._version_lock:
            if self._version_connection is not None:
                self._version_connection.close()
                self._version_connection = None

    # -- searches -------------------------------------------------------------

    def search(
        self,
        kind: str,
        query: str,
        label: Label | None = None,
        index: DirectoryIndex | None = None,
    ) -> tuple[DirectoryIndex, list[int]]:
        """Search by ``kind`` (name, number or keypad) and return the index searched
        and the matching entry positions in directory order.

        ``label`` limits the search to that label's entries. Its positions belong
        to the index it came from, so pass that ``index`` with it; ValueError
        otherwise.
        """
        if kind not in SEARCH_KINDS:
            raise ValueError(
                f"search kind {kind!r} is not one of {', '.join(SEARCH_KINDS)}"
            )
        if label is not None and (
            index is None or index.get_label(label.id) is not label
        ):
            raise ValueError(f"label {label.name!r} is not from the index given")
        index = index or self.index()
        started = time.perf_counter()
        search = {
            "name": index.search_name,
            "number": index.search_number,
            "keypad": index.search_keypad,
        }[kind]
        positions = search(query, label)
        self.events.emit(
            "directory.search",
            kind=kind,
            duration_s=time.perf_counter() - started,
            results=len(positions),
        )
        return index, positions

    def lookup(self, number: str) -> Entry | None:
        """Return the entry a calling number belongs to, for caller-ID lookups."""
        index = self.index()
        started = time.perf_counter()
        entry = index.lookup(number)
        self.events.emit(
            "directory.search",
            kind="number",
            duration_s=time.perf_counter() - started,
            results=0 if entry is None else 1,
        )
        return entry
