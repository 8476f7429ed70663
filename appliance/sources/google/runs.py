"""Records of Google sync runs in the ``sync_runs`` table, newest 100 kept."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from appliance.store import Store

KEEP_RUNS = 100
# Contacts kept per run and kind of change for the admin pages; the counts stay exact.
CHANGES_KEPT = 200
INTERRUPTED_ERROR = "The sync process ended before it finished (stopped or killed)."


@dataclass
class RunRecord:
    """One sync run as stored: times in Unix seconds, counts of changed contacts."""

    run_id: str
    kind: str
    started_at: float
    finished_at: float | None
    outcome: str  # running | ok | error | interrupted
    added: int
    updated: int
    deleted: int
    error: str

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def record_start(store: Store, run_id: str, kind: str, started_at: float) -> None:
    """Insert a run as ``running`` and drop the oldest beyond the newest 100."""
    with store.write() as connection:
        connection.execute(
            "INSERT INTO sync_runs (run_id, kind, started_at, outcome) "
            "VALUES (?, ?, ?, 'running')", (run_id, kind, started_at))
        connection.execute(
            "DELETE FROM sync_runs WHERE id NOT IN "
            "(SELECT id FROM sync_runs ORDER BY id DESC LIMIT ?)", (KEEP_RUNS,))


def record_finish(connection: sqlite3.Connection, run_id: str, kind: str,
                  finished_at: float, outcome: str, counts: dict[str, int],
                  error: str = "") -> None:
    """Close a run inside the caller's transaction."""
    connection.execute(
        "UPDATE sync_runs SET kind = ?, finished_at = ?, outcome = ?, added = ?, "
        "updated = ?, deleted = ?, error = ? WHERE run_id = ?",
        (kind, finished_at, outcome, counts.get("added", 0), counts.get("updated", 0),
         counts.get("deleted", 0), error, run_id))


def record_changes(connection: sqlite3.Connection, run_id: str,
                   changes: dict[str, list]) -> None:
    """Store who a run added, updated and deleted, inside the caller's transaction.

    ``changes`` maps ``added``, ``updated`` and ``deleted`` to items with
    ``source_id`` and ``name``; the first CHANGES_KEPT of each are kept.
    """
    connection.executemany(
        "INSERT INTO sync_changes (run_id, change, source_id, name) VALUES (?, ?, ?, ?)",
        [(run_id, change, item.source_id, item.name)
         for change, items in changes.items() for item in items[:CHANGES_KEPT]])


def run_changes(store: Store, run_id: str) -> dict[str, list[str]]:
    """Return the names a run added, updated and deleted, each sorted."""
    changes: dict[str, list[str]] = {"added": [], "updated": [], "deleted": []}
    for change, name in store.reader().execute(
            "SELECT change, name FROM sync_changes WHERE run_id = ? ORDER BY name", (run_id,)):
        changes.setdefault(change, []).append(name)
    return changes


def mark_interrupted(connection: sqlite3.Connection, current_run_id: str) -> int:
    """Mark runs still ``running`` as interrupted; call while holding the sync lock."""
    cursor = connection.execute(
        "UPDATE sync_runs SET outcome = 'interrupted', error = ? "
        "WHERE outcome = 'running' AND run_id != ?", (INTERRUPTED_ERROR, current_run_id))
    return cursor.rowcount


def recent_runs(store: Store, limit: int = KEEP_RUNS) -> list[RunRecord]:
    """Read the newest runs first."""
    rows = store.reader().execute(
        "SELECT run_id, kind, started_at, finished_at, outcome, added, updated, deleted, "
        "error FROM sync_runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [RunRecord(run_id=row[0], kind=row[1], started_at=row[2], finished_at=row[3],
                      outcome=row[4], added=row[5], updated=row[6], deleted=row[7],
                      error=row[8]) for row in rows]
