"""The Google sync: fetch from the People API, then apply in one transaction.

Every run first fetches all pages of every enabled source into memory and only
then writes, in one store transaction, the contacts, the new sync tokens, the
run record and the state keys. A run that fails or is killed while fetching
writes nothing, so the previous directory keeps serving.

Sources and their sync token chains (``otherContacts`` and ``connections``
tokens are separate chains in Google's API):

- ``connections``: the account's contacts, ``people/me/connections``
- ``other``: "Other contacts", off unless ``[google] other_contacts``
- ``directory``: the Workspace directory, off unless ``[google] workspace_directory``
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from appliance import context
from appliance.config import Config
from appliance.errors import ApplianceError, AuthorisationNeeded, SyncError, SyncTokenExpired
from appliance.events import Events
from appliance.model import Contact
from appliance.sources.google import auth, runs
from appliance.sources.google.client import PeopleClient, Stopped, encode_params
from appliance.sources.google.people import (
    is_deleted,
    passes_label_filter,
    person_to_contact,
    previous_names,
)
from appliance.store import Store, insert_contacts

logger = logging.getLogger(__name__)

PAGE_SIZE = 1000  # the People API maximum for every list method used here
PERSON_FIELDS = "names,nicknames,organizations,phoneNumbers,memberships,metadata"
# Bumped when the conversion from Person to contact changes, so the next run is
# a full sync that rewrites every stored contact.
CONVERSION_VERSION = 1
LOCK_NAME = "google-sync.lock"

ProgressCallback = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class SourceSpec:
    """One People API list method that feeds one contact source."""

    key: str
    source: str
    method: str
    path: str
    item_key: str
    params: dict[str, Any]
    uses_labels: bool = False

    @property
    def token_key(self) -> str:
        return f"google.{self.key}.sync_token"

    @property
    def fingerprint_key(self) -> str:
        return f"google.{self.key}.fingerprint"


CONNECTIONS = SourceSpec(
    key="connections", source="google", method="connections.list",
    path="v1/people/me/connections", item_key="connections", uses_labels=True,
    params={"personFields": PERSON_FIELDS, "pageSize": PAGE_SIZE, "requestSyncToken": "true"})
OTHER_CONTACTS = SourceSpec(
    key="other", source="google-other", method="otherContacts.list",
    path="v1/otherContacts", item_key="otherContacts",
    # With the CONTACT source, otherContacts accepts only a few read mask fields.
    params={"readMask": "names,phoneNumbers,metadata", "pageSize": PAGE_SIZE,
            "requestSyncToken": "true"})
DIRECTORY = SourceSpec(
    key="directory", source="google-directory", method="people.listDirectoryPeople",
    path="v1/people:listDirectoryPeople", item_key="people",
    params={"readMask": "names,nicknames,organizations,phoneNumbers,metadata",
            "sources": ["DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE",
                        "DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT"],
            "pageSize": PAGE_SIZE, "requestSyncToken": "true"})
ALL_SOURCES = (CONNECTIONS, OTHER_CONTACTS, DIRECTORY)

STATE_LABELS = "google.labels"


class SyncBusy(SyncError):
    """Another sync holds the sync lock, in this process or another."""


@dataclass
class ContactChange:
    """One contact added, changed or removed by a sync, for the change report."""

    source_id: str
    name: str


@dataclass
class SyncResult:
    """Result of one sync run; ``outcome`` is ok or error."""

    run_id: str
    kind: str
    outcome: str
    dry_run: bool
    started_at: float
    finished_at: float
    added: list[ContactChange] = field(default_factory=list)
    updated: list[ContactChange] = field(default_factory=list)
    deleted: list[ContactChange] = field(default_factory=list)
    error: str = ""

    @property
    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "updated": len(self.updated),
                "deleted": len(self.deleted)}

    @property
    def duration_s(self) -> float:
        return self.finished_at - self.started_at


@dataclass
class _Fetched:
    spec: SourceSpec
    kind: str  # full | incremental
    people: list[dict[str, Any]]  # the answers of an incremental fetch
    sync_token: str | None
    fingerprint: str
    # A full fetch converts each page as it arrives, so only one page of decoded
    # JSON is held at a time: all 25 pages of 25,000 people took 164 MiB.
    contacts: dict[str, Contact] = field(default_factory=dict)


def enabled_sources(config: Config) -> tuple[SourceSpec, ...]:
    sources = [CONNECTIONS]
    if config.google.other_contacts:
        sources.append(OTHER_CONTACTS)
    if config.google.workspace_directory:
        sources.append(DIRECTORY)
    return tuple(sources)


def contact_name(contact: Contact) -> str:
    """Return the name a change report shows for a contact."""
    full = " ".join(part for part in (contact.given_name, contact.family_name) if part)
    return contact.display_name or full or contact.company or contact.source_id


def stored_labels(store: Store) -> list[str]:
    """Return the names of the Google labels seen by the last sync, sorted."""
    labels = json.loads(store.get_state(STATE_LABELS, "{}") or "{}")
    return sorted(set(labels.values()), key=str.casefold)


class GoogleSync:
    """Run syncs from Google into the store, one at a time."""

    def __init__(self, config: Config, store: Store, events: Events,
                 stop_event: threading.Event | None = None) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.stop_event = stop_event or threading.Event()
        self._lock = threading.Lock()
        self.running_run_id: str | None = None
        self._last_authorisation = store.get_state("google.authorisation")

    @property
    def is_running(self) -> bool:
        return self.running_run_id is not None

    # -- one run ------------------------------------------------------------------

    def run(self, full: bool = False, dry_run: bool = False,
            progress: ProgressCallback | None = None,
            request_id: str | None = None) -> SyncResult:
        """Run one sync now and return what it did; a failure is in the result.

        Raises SyncBusy when another sync is running.
        """
        if not self._lock.acquire(blocking=False):
            raise SyncBusy("A sync is already running; wait for it to finish.")
        try:
            with _file_lock(Path(self.config.storage.data_dir) / LOCK_NAME):
                return self._run_locked(full, dry_run, progress, request_id)
        finally:
            self._lock.release()

    def _run_locked(self, full: bool, dry_run: bool, progress: ProgressCallback | None,
                    request_id: str | None) -> SyncResult:
        run_id = uuid.uuid4().hex
        started_at = time.time()
        planned = "full" if full or self._needs_full() else "incremental"
        token = context.run_id.set(run_id)
        # A sync started by a request (Sync now) carries that request's ID on its
        # log lines too, although it runs in the scheduler's thread.
        request_token = context.request_id.set(request_id) if request_id else None
        self.running_run_id = run_id
        result = SyncResult(run_id=run_id, kind=planned, outcome="error", dry_run=dry_run,
                            started_at=started_at, finished_at=started_at)
        try:
            self.events.emit("sync.started", run_id=run_id, kind=planned, source="google")
            if not dry_run:
                self.store.set_state("sync.last_attempt_at", str(int(started_at)))
                runs.record_start(self.store, run_id, planned, started_at)
            self._sync(result, full, progress, request_id or run_id)
        except Stopped as error:
            self._fail(result, str(error), authorisation=False)
        except AuthorisationNeeded as error:
            self._fail(result, str(error), authorisation=True)
        except ApplianceError as error:  # SyncError, ConfigError, StoreError
            self._fail(result, str(error), authorisation=False)
        except Exception as error:  # the sync boundary: report, keep serving
            logger.exception("sync crashed", extra={"run_id": run_id})
            self._fail(result, f"Unexpected error in the sync ({type(error).__name__}); "
                               "the log has the details.", authorisation=False)
        finally:
            self.running_run_id = None
            result.finished_at = max(result.finished_at, time.time())
            self._report(result)
            context.run_id.reset(token)
            if request_token is not None:
                context.request_id.reset(request_token)
        return result

    def _needs_full(self) -> bool:
        for spec in enabled_sources(self.config):
            if not self.store.get_state(spec.token_key):
                return True
            if self.store.get_state(spec.fingerprint_key) != self._fingerprint(spec):
                return True
        return False

    def _fingerprint(self, spec: SourceSpec) -> str:
        """Digest the request parameters and the settings that shape stored contacts."""
        settings = {"method": spec.method, "params": spec.params,
                    "home_country": self.config.dialplan.home_country.upper(),
                    "conversion": CONVERSION_VERSION}
        if spec.uses_labels:
            settings["labels_include"] = sorted(self.config.google.labels_include)
            settings["labels_exclude"] = sorted(self.config.google.labels_exclude)
        return hashlib.sha256(encode_params(settings).encode("utf-8")).hexdigest()

    def _sync(self, result: SyncResult, full: bool, progress: ProgressCallback | None,
              request_id: str) -> None:
        credentials = auth.load_credentials(self.config)
        credentials_file = (None if auth.uses_service_account(self.config)
                            else auth.credentials_path(self.config))
        client = PeopleClient(credentials, self.config, self.events, request_id,
                              credentials_file=credentials_file, sleep=self.stop_event.wait)
        try:
            labels = self._fetch_labels(client)
            labels_changed = labels != json.loads(self.store.get_state(STATE_LABELS, "{}") or "{}")
            fetched = [self._fetch(client, spec, full or (spec.uses_labels and labels_changed),
                                   labels, progress)
                       for spec in enabled_sources(self.config)]
        finally:
            client.close()
        result.kind = "full" if any(item.kind == "full" for item in fetched) else "incremental"
        self._apply(result, fetched, labels)
        result.outcome = "ok"

    # -- fetching -----------------------------------------------------------------

    def _fetch_labels(self, client: PeopleClient) -> dict[str, str]:
        """Map contact group resource names to label names, user labels only."""
        labels = {}
        params = {"groupFields": "name,groupType", "pageSize": PAGE_SIZE}
        for page in client.list_pages("contactGroups.list", "v1/contactGroups", params,
                                      "contactGroups"):
            for group in page.items:
                if not isinstance(group, dict) or group.get("groupType") != "USER_CONTACT_GROUP":
                    continue
                if (group.get("metadata") or {}).get("deleted"):
                    continue
                name = group.get("formattedName") or group.get("name")
                if group.get("resourceName") and isinstance(name, str) and name.strip():
                    labels[group["resourceName"]] = " ".join(name.split())
        return labels

    def _fetch(self, client: PeopleClient, spec: SourceSpec, full: bool,
               labels: dict[str, str], progress: ProgressCallback | None) -> _Fetched:
        fingerprint = self._fingerprint(spec)
        token = self.store.get_state(spec.token_key)
        if token and not full and self.store.get_state(spec.fingerprint_key) == fingerprint:
            try:
                return self._fetch_pages(client, spec, "incremental", token, fingerprint,
                                         labels, progress)
            except SyncTokenExpired:
                logger.warning("sync token expired", extra={"method": spec.method,
                                                             "action": "full sync"})
        elif token:
            logger.info("sync token dropped", extra={
                "method": spec.method,
                "reason": "full sync requested" if full else "request parameters changed"})
        return self._fetch_pages(client, spec, "full", None, fingerprint, labels, progress)

    def _fetch_pages(self, client: PeopleClient, spec: SourceSpec, kind: str,
                     token: str | None, fingerprint: str, labels: dict[str, str],
                     progress: ProgressCallback | None) -> _Fetched:
        params = dict(spec.params)
        if token:
            params["syncToken"] = token
        fetched = _Fetched(spec=spec, kind=kind, people=[], sync_token=None,
                           fingerprint=fingerprint)
        count = 0
        for page in client.list_pages(spec.method, spec.path, params, spec.item_key):
            people = [item for item in page.items if isinstance(item, dict)]
            page.items.clear()
            count += len(people)
            if kind == "full":
                for person in people:
                    contact = self._convert(spec, person, labels)
                    if contact is not None:
                        fetched.contacts[contact.source_id] = contact
                # The loop holds this page until the next one is decoded, so its
                # JSON is dropped here; two pages at once raised the peak by 6 MiB.
                people.clear()
            else:
                fetched.people += people
            fetched.sync_token = page.next_sync_token or fetched.sync_token
            if progress is not None:
                progress(spec.method, count, page.total)
        logger.debug("google source fetched", extra={
            "method": spec.method, "kind": kind, "people": count})
        return fetched

    # -- applying -----------------------------------------------------------------

    def _apply(self, result: SyncResult, fetched: list[_Fetched],
               labels: dict[str, str]) -> None:
        try:
            with self.store.write() as connection:
                for item in fetched:
                    self._apply_source(connection, item, labels, result)
                self._drop_disabled_sources(connection, result)
                if result.dry_run:
                    raise _RollBack()
                self._store_success(connection, result, fetched, labels)
        except _RollBack:
            pass

    def _apply_source(self, connection: sqlite3.Connection, item: _Fetched,
                      labels: dict[str, str], result: SyncResult) -> None:
        spec = item.spec
        old = _stored_rows(connection, spec.source)
        if item.kind == "full":
            contacts = item.contacts
            report = self.store.replace_source(spec.source, list(contacts.values()),
                                               connection=connection)
            result.added += [_change(contacts[key]) for key in report.added]
            result.updated += [_change(contacts[key]) for key in report.updated]
            result.deleted += [ContactChange(key, old[key][1]) for key in report.deleted]
            return
        for person in item.people:
            self._apply_change(connection, spec, person, labels, old, result)

    def _apply_change(self, connection: sqlite3.Connection, spec: SourceSpec,
                      person: dict[str, Any], labels: dict[str, str],
                      old: dict[str, tuple[str, str]], result: SyncResult) -> None:
        """Apply one person from an incremental answer: add, change, re-key or remove."""
        resource_name = person.get("resourceName")
        if not isinstance(resource_name, str):
            return
        keys = [resource_name] + previous_names(person)
        existing = {key: old.pop(key) for key in keys if key in old}
        contact = None if is_deleted(person) else self._convert(spec, person, labels)
        self.store.delete_contacts(connection, spec.source, keys)
        if contact is None:
            result.deleted += [ContactChange(key, name) for key, (_, name) in existing.items()]
            return
        insert_contacts(connection, [contact])
        old[contact.source_id] = (contact.fingerprint(), contact_name(contact))
        if not existing:
            result.added.append(_change(contact))
        elif contact.fingerprint() not in {fingerprint for fingerprint, _ in existing.values()}:
            result.updated.append(_change(contact))

    def _convert(self, spec: SourceSpec, person: dict[str, Any],
                 labels: dict[str, str]) -> Contact | None:
        if spec.uses_labels and not passes_label_filter(
                person, labels, self.config.google.labels_include,
                self.config.google.labels_exclude):
            return None
        return person_to_contact(person, spec.source, labels if spec.uses_labels else {},
                                 self.config.dialplan.home_country)

    def _drop_disabled_sources(self, connection: sqlite3.Connection,
                               result: SyncResult) -> None:
        """Remove contacts and sync tokens of sources that were turned off."""
        enabled = {spec.key for spec in enabled_sources(self.config)}
        for spec in ALL_SOURCES:
            if spec.key in enabled:
                continue
            old = _stored_rows(connection, spec.source)
            if old:
                self.store.delete_contacts(connection, spec.source, list(old))
                result.deleted += [ContactChange(key, name) for key, (_, name) in old.items()]
            _set_state(self.store, connection, spec.token_key, None)
            _set_state(self.store, connection, spec.fingerprint_key, None)

    def _store_success(self, connection: sqlite3.Connection, result: SyncResult,
                       fetched: list[_Fetched], labels: dict[str, str]) -> None:
        for item in fetched:
            _set_state(self.store, connection, item.spec.token_key, item.sync_token)
            _set_state(self.store, connection, item.spec.fingerprint_key,
                       item.fingerprint if item.sync_token else None)
        now = time.time()
        result.finished_at = now
        _set_state(self.store, connection, STATE_LABELS, json.dumps(labels, sort_keys=True))
        _set_state(self.store, connection, "sync.last_success_at", str(int(now)))
        _set_state(self.store, connection, "sync.consecutive_failures", "0")
        _set_state(self.store, connection, "sync.last_error", "")
        _set_state(self.store, connection, "google.authorisation", "ok")
        runs.record_finish(connection, result.run_id, result.kind, now, "ok", result.counts)
        runs.record_changes(connection, result.run_id, {
            "added": result.added, "updated": result.updated, "deleted": result.deleted})
        runs.mark_interrupted(connection, result.run_id)

    # -- outcome ------------------------------------------------------------------

    def _fail(self, result: SyncResult, message: str, authorisation: bool) -> None:
        result.outcome = "error"
        result.error = message
        result.added, result.updated, result.deleted = [], [], []
        result.finished_at = time.time()
        if result.dry_run:
            return
        failures = int(self.store.get_state("sync.consecutive_failures", "0") or 0) + 1
        with self.store.write() as connection:
            _set_state(self.store, connection, "sync.consecutive_failures", str(failures))
            _set_state(self.store, connection, "sync.last_error", message)
            if authorisation:
                _set_state(self.store, connection, "google.authorisation", "needed")
            runs.record_finish(connection, result.run_id, result.kind, result.finished_at,
                               "error", result.counts, message)
            runs.mark_interrupted(connection, result.run_id)

    def _report(self, result: SyncResult) -> None:
        """Log the outcome, emit sync.finished, and google.authorisation on a change."""
        fields = {"run_id": result.run_id, "kind": result.kind, "outcome": result.outcome,
                  "dry_run": result.dry_run, "duration_s": round(result.duration_s, 3),
                  **result.counts}
        if result.outcome == "ok":
            logger.info("sync finished", extra=fields)
        else:
            failures = self.store.get_state("sync.consecutive_failures", "0")
            level = logging.ERROR if failures == "1" else logging.WARNING
            logger.log(level, "sync failed", extra={**fields, "error": result.error,
                                                    "consecutive_failures": failures})
        self.events.emit(
            "sync.finished", run_id=result.run_id, kind=result.kind, source="google",
            outcome=result.outcome, duration_s=result.duration_s,
            error=result.error or None, started_at=result.started_at,
            finished_at=result.finished_at, **result.counts)
        if not result.dry_run:
            self._report_authorisation(result)

    def _report_authorisation(self, result: SyncResult) -> None:
        state = self.store.get_state("google.authorisation")
        if state == self._last_authorisation:
            return
        previous, self._last_authorisation = self._last_authorisation, state
        if state == "needed":
            self.events.emit("google.authorisation", authorised=False, reason=result.error)
        elif state == "ok" and previous is not None:
            self.events.emit("google.authorisation", authorised=True,
                             reason="a sync succeeded")


class _RollBack(Exception):
    """Raised inside the write transaction of a dry run to undo it."""


def _change(contact: Contact) -> ContactChange:
    return ContactChange(contact.source_id, contact_name(contact))


def _stored_rows(connection: sqlite3.Connection, source: str) -> dict[str, tuple[str, str]]:
    """Map source ids of one source to their fingerprint and report name."""
    rows = connection.execute(
        "SELECT source_id, fingerprint, display_name, given_name, family_name, company "
        "FROM contacts WHERE source = ?", (source,))
    stored = {}
    for source_id, fingerprint, display, given, family, company in rows:
        full = " ".join(part for part in (given, family) if part)
        stored[source_id] = (fingerprint, display or full or company or source_id)
    return stored


def _set_state(store: Store, connection: sqlite3.Connection, key: str,
               value: str | None) -> None:
    store.set_state(key, value, connection=connection)


def is_sync_lock_held(data_dir: Path) -> bool:
    """Tell whether a sync, in this process or another, holds the sync lock now."""
    try:
        with _file_lock(data_dir / LOCK_NAME):
            return False
    except SyncBusy:
        return True


class _file_lock:
    """Hold an exclusive lock on a file, so two processes never sync at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def __enter__(self) -> "_file_lock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise SyncBusy("Another process is running a sync (for example "
                           "'python -m appliance sync'); wait for it to finish.") from None
        self._descriptor = descriptor
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
            self._descriptor = None
