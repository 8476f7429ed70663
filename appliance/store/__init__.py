"""The SQLite store: schema, migrations, reads and the bulk-replace transaction.

One writer connection, guarded by a lock, makes every change in a short
``BEGIN IMMEDIATE`` transaction. Readers use their own read-only connections, and
WAL mode lets them read the last committed state while a write is under way.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from appliance.errors import StoreError
from appliance.model import Contact, PhoneNumber
from appliance.store.schema import MIGRATIONS

logger = logging.getLogger(__name__)

DATABASE_NAME = "phonebook.sqlite3"
BUSY_TIMEOUT_MS = 10_000


@dataclass
class ChangeReport:
    """Source ids added, updated and deleted by one bulk change."""

    added: list[str]
    updated: list[str]
    deleted: list[str]

    @property
    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "updated": len(self.updated),
                "deleted": len(self.deleted)}


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"file:{path}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False,
                                     isolation_level=None)
    else:
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


class Store:
    """The appliance's database file and the one connection that writes to it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._writer: sqlite3.Connection | None = None
        # Every thread's reader, so that close() reaches those of other threads too.
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path) -> "Store":
        """Open (creating if needed) the database in ``data_dir`` and migrate it."""
        data_dir = Path(data_dir)
        try:
            if not data_dir.exists():
                data_dir.mkdir(parents=True, mode=0o700)
            store = cls(data_dir / DATABASE_NAME)
            created = not store.path.exists()
            store._writer = _connect(store.path)
            if created:
                os.chmod(store.path, 0o600)
            store._writer.execute("PRAGMA journal_mode = WAL")
            store._writer.execute("PRAGMA synchronous = NORMAL")
            store._migrate()
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"Database {data_dir / DATABASE_NAME} cannot be opened: {error}. Check that the "
                "file is a phonebook database and that the appliance may write to its folder."
            ) from None
        except OSError as error:
            raise StoreError(
                f"Data folder {data_dir} cannot be used: {error.strerror or error}. Set "
                "[storage] data_dir to a folder the appliance may write to."
            ) from None
        return store

    def close(self) -> None:
        """Close every thread's reader, then the writer.

        The writer closes last because the last connection to close checkpoints the
        WAL and removes the -wal and -shm files, which a read-only one cannot do.
        """
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        self._local.reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _migrate(self) -> None:
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"Database {self.path} has schema version {version}, newer than this "
                f"release understands ({len(MIGRATIONS)}). Run the newer release, or restore "
                "a backup made by this one."
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript() commits any open transaction before it starts, so
            # each migration carries its own BEGIN and COMMIT.
            with self._write_lock:
                try:
                    self._writer.executescript(
                        f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
                except sqlite3.Error:
                    if self._writer.in_transaction:
                        self._writer.execute("ROLLBACK")
                    raise
            logger.info("database migrated", extra={"schema_version": number})

    # -- connections ----------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Hold the writer connection inside one ``BEGIN IMMEDIATE`` transaction.

        Raises StoreError when SQLite cannot begin or commit, such as on a full disk
        or a read-only file; the transaction is then rolled back and nothing changes.
        """
        if self._writer is None:
            raise StoreError(f"Database {self.path} is closed.")
        with self._write_lock:
            connection = self._writer
            try:
                connection.execute("BEGIN IMMEDIATE")
                yield connection
                connection.execute("COMMIT")
            except BaseException as error:
                # SQLite has already rolled back after some errors, such as SQLITE_FULL.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise _write_error(self.path, error) from error
                raise

    def reader(self) -> sqlite3.Connection:
        """Return this thread's read-only connection, opening it on first use."""
        connection = getattr(self._local, "reader", None)
        if connection is None:
            connection = _connect(self.path, read_only=True)
            self._local.reader = connection
            with self._readers_lock:
                self._readers.append(connection)
        return connection

    def data_version(self) -> int:
        """Return a number that changes whenever any connection commits a change."""
        # PRAGMA data_version ignores commits made on the same connection; reader
        # connections never commit, so a reader sees every change, this process's too.
        return self.reader().execute("PRAGMA data_version").fetchone()[0]

    # -- reads ----------------------------------------------------------------

    def count_contacts(self) -> int:
        return self.reader().execute("SELECT count(*) FROM contacts").fetchone()[0]

    def count_numbers(self) -> int:
        return self.reader().execute("SELECT count(*) FROM numbers").fetchone()[0]

    def count_by_source(self) -> dict[str, int]:
        rows = self.reader().execute(
            "SELECT source, count(*) FROM contacts GROUP BY source ORDER BY source")
        return dict(rows.fetchall())

    def load_contacts(self, sources: Iterable[str] | None = None) -> list[Contact]:
        """Read every contact with its numbers and labels, in one read transaction."""
        connection = self.reader()
        connection.execute("BEGIN")
        try:
            contacts = self._read_contacts(connection, sources)
        finally:
            connection.execute("COMMIT")
        return contacts

    def _read_contacts(self, connection: sqlite3.Connection,
                       sources: Iterable[str] | None) -> list[Contact]:
        where, params = "", ()
        if sources is not None:
            params = tuple(sources)
            where = f"WHERE source IN ({', '.join('?' * len(params))})"
        by_id: dict[int, Contact] = {}
        for row in connection.execute(
            "SELECT id, source, source_id, origin, given_name, family_name, middle_name, "
            f"display_name, nickname, company, job_title, etag FROM contacts {where} ORDER BY id",
            params,
        ):
            by_id[row[0]] = Contact(
                id=row[0], source=row[1], source_id=row[2], origin=row[3], given_name=row[4],
                family_name=row[5], middle_name=row[6], display_name=row[7], nickname=row[8],
                company=row[9], job_title=row[10], etag=row[11])
        for contact_id, raw, type_label, e164, extension, is_primary in connection.execute(
            "SELECT contact_id, raw, type_label, e164, extension, is_primary FROM numbers "
            "ORDER BY contact_id, position"
        ):
            contact = by_id.get(contact_id)
            if contact is not None:
                contact.numbers.append(PhoneNumber(raw=raw, type_label=type_label, e164=e164,
                                                   extension=extension,
                                                   is_primary=bool(is_primary)))
        for contact_id, label in connection.execute(
            "SELECT contact_id, label FROM contact_labels ORDER BY contact_id, label"
        ):
            contact = by_id.get(contact_id)
            if contact is not None:
                contact.labels.append(label)
        return list(by_id.values())

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self.reader().execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str | None,
                  connection: sqlite3.Connection | None = None) -> None:
        """Store (or with ``None`` delete) one state value, inside ``connection``'s
        transaction when one is given."""
        if connection is None:
            with self.write() as own:
                _set_state(own, key, value)
        else:
            _set_state(connection, key, value)

    # -- writes ---------------------------------------------------------------

    def replace_source(self, source: str, contacts: list[Contact],
                       also_clear: Iterable[str] = ("sample",),
                       connection: sqlite3.Connection | None = None) -> ChangeReport:
        """Replace every contact of ``source`` with ``contacts`` in one transaction.

        Sources named in ``also_clear`` are emptied in the same transaction, so the
        bundled sample contacts go as soon as real ones arrive. Pass ``connection``
        to join a transaction the caller already holds.
        """
        if connection is not None:
            return self._replace(connection, source, contacts, tuple(also_clear))
        with self.write() as own:
            return self._replace(own, source, contacts, tuple(also_clear))

    def _replace(self, connection: sqlite3.Connection, source: str, contacts: list[Contact],
                 also_clear: tuple[str, ...]) -> ChangeReport:
        old = dict(connection.execute(
            "SELECT source_id, fingerprint FROM contacts WHERE source = ?", (source,)))
        new_ids: set[str] = set()
        added, updated = [], []
        for contact in contacts:
            if contact.source != source:
                raise ValueError(f"contact {contact.source_id!r} is from {contact.source!r}, "
                                 f"not {source!r}")
            if contact.source_id in new_ids:
                raise ValueError(f"duplicate source_id {contact.source_id!r} in {source!r}")
            new_ids.add(contact.source_id)
            previous = old.get(contact.source_id)
            if previous is None:
                added.append(contact.source_id)
            elif previous != contact.fingerprint():
                updated.append(contact.source_id)
        deleted = [source_id for source_id in old if source_id not in new_ids]

        clear = (source,) + tuple(name for name in also_clear if name != source)
        connection.execute(
            f"DELETE FROM contacts WHERE source IN ({', '.join('?' * len(clear))})", clear)
        insert_contacts(connection, contacts)
        return ChangeReport(added=added, updated=updated, deleted=deleted)

    def delete_contacts(self, connection: sqlite3.Connection, source: str,
                        source_ids: Iterable[str]) -> int:
        """Delete contacts by source id inside the caller's transaction."""
        cursor = connection.executemany(
            "DELETE FROM contacts WHERE source = ? AND source_id = ?",
            ((source, source_id) for source_id in source_ids))
        return cursor.rowcount

    def integrity_check(self, quick: bool = True) -> str:
        """Run SQLite's integrity check and return its first line (``ok`` when sound)."""
        pragma = "quick_check" if quick else "integrity_check"
        return self.reader().execute(f"PRAGMA {pragma}").fetchone()[0]

    def size_bytes(self) -> int:
        """Return the size of the database file with its WAL and shared-memory files."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.stat(f"{self.path}{suffix}").st_size
            except FileNotFoundError:
                pass
        return total


def insert_contacts(connection: sqlite3.Connection, contacts: Iterable[Contact]) -> None:
    """Insert contacts with their numbers and labels inside the caller's transaction."""
    now = _utc_now()
    for contact in contacts:
        cursor = connection.execute(
            "INSERT INTO contacts (source, source_id, origin, given_name, family_name, "
            "middle_name, display_name, nickname, company, job_title, etag, fingerprint, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (contact.source, contact.source_id, contact.origin, contact.given_name,
             contact.family_name, contact.middle_name, contact.display_name, contact.nickname,
             contact.company, contact.job_title, contact.etag, contact.fingerprint(), now),
        )
        contact_id = cursor.lastrowid
        contact.id = contact_id
        connection.executemany(
            "INSERT INTO numbers (contact_id, position, type_label, raw, e164, extension, "
            "is_primary) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(contact_id, position, number.type_label, number.raw, number.e164,
              number.extension, int(number.is_primary))
             for position, number in enumerate(contact.numbers)],
        )
        connection.executemany(
            "INSERT OR IGNORE INTO contact_labels (contact_id, label) VALUES (?, ?)",
            [(contact_id, label) for label in contact.labels],
        )


def _write_error(path: Path, error: sqlite3.Error) -> StoreError:
    """Return a StoreError for a failed write, with the step the admin can take."""
    text = str(error)
    if "full" in text:
        hint = "The disk under [storage] data_dir is full: free some space."
    elif "readonly" in text or "read-only" in text:
        hint = ("Make the database file and its folder writable by the appliance's user "
                "(and check that the disk is not mounted read-only).")
    elif "I/O" in text:
        hint = ("SQLite could not write to the file: check that the disk works and that the "
                "file is not read-only or immutable (lsattr).")
    elif "locked" in text or "busy" in text:
        hint = "Another process held the database too long: try again."
    else:
        hint = "Check the disk and the database file."
    return StoreError(f"Database {path} cannot be written: {text}. {hint} Nothing was "
                      "changed; the directory keeps serving the contacts it had.")


def _set_state(connection: sqlite3.Connection, key: str, value: str | None) -> None:
    if value is None:
        connection.execute("DELETE FROM state WHERE key = ?", (key,))
    else:
        connection.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

