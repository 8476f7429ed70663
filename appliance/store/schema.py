"""Forward migrations. ``PRAGMA user_version`` holds how many have run.

Append a new script for every schema change; never edit one that has shipped.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: contacts, their numbers and labels, and key/value state.
    """
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        source_id TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '',
        given_name TEXT NOT NULL DEFAULT '',
        family_name TEXT NOT NULL DEFAULT '',
        middle_name TEXT NOT NULL DEFAULT '',
        display_name TEXT NOT NULL DEFAULT '',
        nickname TEXT NOT NULL DEFAULT '',
        company TEXT NOT NULL DEFAULT '',
        job_title TEXT NOT NULL DEFAULT '',
        etag TEXT NOT NULL DEFAULT '',
        fingerprint TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        UNIQUE (source, source_id)
    );
    CREATE TABLE numbers (
        id INTEGER PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        type_label TEXT NOT NULL DEFAULT '',
        raw TEXT NOT NULL,
        e164 TEXT,
        extension TEXT,
        is_primary INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX numbers_by_contact ON numbers (contact_id);
    CREATE INDEX numbers_by_e164 ON numbers (e164);
    CREATE TABLE contact_labels (
        contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
        label TEXT NOT NULL,
        PRIMARY KEY (contact_id, label)
    );
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: one row per Google sync run; the sync keeps the newest 100.
    """
    CREATE TABLE sync_runs (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        outcome TEXT NOT NULL DEFAULT 'running',
        added INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT ''
    );
    """,
    # 3: per-phone access tokens (stored as SHA-256 digests) and their daily uses.
    """
    CREATE TABLE phone_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL,
        last_client TEXT NOT NULL DEFAULT '',
        uses INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE phone_token_uses (
        token_id INTEGER NOT NULL REFERENCES phone_tokens (id) ON DELETE CASCADE,
        client TEXT NOT NULL,
        day TEXT NOT NULL,
        uses INTEGER NOT NULL,
        first_at REAL NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (token_id, client, day)
    );
    """,
    # 4: the contacts each sync run added, updated or deleted, for the admin pages.
    """
    CREATE TABLE sync_changes (
        run_id TEXT NOT NULL REFERENCES sync_runs (run_id) ON DELETE CASCADE,
        change TEXT NOT NULL,
        source_id TEXT NOT NULL,
        name TEXT NOT NULL
    );
    CREATE INDEX sync_changes_by_run ON sync_changes (run_id);
    """,
)
