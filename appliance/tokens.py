"""Per-phone access tokens: issued by an admin, revocable, each use recorded.

A token is 24 URL-safe characters (144 random bits) that the phone carries in its
directory URL as ``?token=...``. The store keeps only its SHA-256 digest, so a copy
of the database does not give working tokens. Because the token has full entropy, a
plain digest is enough; a slow password hash would only cost time on every request.

Uses are counted in memory and written by the ``token-uses`` worker every few
seconds, one row per token, client address and day, so a phone paging through the
directory never waits for a database write.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import time
import unicodedata
from dataclasses import dataclass

from appliance.errors import StoreError
from appliance.store import Store

logger = logging.getLogger(__name__)

TOKEN_BYTES = 18  # 24 URL-safe characters, short enough for a phone's 256-character URL
NAME_MAX_CHARS = 64
FLUSH_INTERVAL_S = 5.0
# Daily use rows older than this are deleted when uses are written.
USE_RETENTION_DAYS = 90
# SQLite integers are signed 64-bit; binding a larger Python int raises OverflowError.
_MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True)
class PhoneToken:
    """One issued token as the store keeps it, without the secret."""

    id: int
    name: str
    created_at: float
    revoked_at: float | None
    last_used_at: float | None
    last_client: str
    uses: int

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


def hash_token(token: str) -> str:
    """Return the hex SHA-256 digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValueError("A token needs a name, such as the phone's SEP name or its desk.")
    # Whitespace such as a newline became one space above; any other control or
    # format character (ESC starts a terminal escape sequence) would reach the
    # terminal of whoever lists the tokens.
    controls = sorted({f"U+{ord(c):04X}" for c in cleaned if _is_control(c)})
    if controls:
        raise ValueError(f"Token name contains control characters ({', '.join(controls)}): "
                         "use letters, digits, spaces and punctuation only.")
    if len(cleaned) > NAME_MAX_CHARS:
        raise ValueError(
            f"Token name is {len(cleaned)} characters long: use at most {NAME_MAX_CHARS}.")
    return cleaned


def _unknown_id(token_id: int) -> LookupError:
    return LookupError(f"No phone token has ID {token_id}: list them with "
                       "'python -m appliance token list'.")


def _is_control(character: str) -> bool:
    return unicodedata.category(character) in ("Cc", "Cf", "Cs", "Co", "Cn")


def _printable(text: str) -> str:
    """Return ``text`` with control characters written as escapes, such as \\x1b."""
    if not any(_is_control(character) for character in text):
        return text
    return "".join(character.encode("unicode_escape").decode("ascii")
                   if _is_control(character) else character for character in text)


class PhoneTokens:
    """Issue, list, revoke and check phone tokens, and record their uses."""

    def __init__(self, store: Store, clock=time.time) -> None:
        self.store = store
        self._clock = clock
        self._pending: dict[tuple[int, str, str], list[float]] = {}
        self._pending_lock = threading.Lock()

    # -- admin actions ------------------------------------------------------

    def create(self, name: str, client: str = "") -> tuple[PhoneToken, str]:
        """Issue a token named ``name``; return its record and the token text.

        The token text is shown once and cannot be read back later. ``client`` is
        the admin's address for the log, empty for the command line.
        Raises ValueError for an empty or over-long name.
        """
        name = _clean_name(name)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        with self.store.write() as connection:
            cursor = connection.execute(
                "INSERT INTO phone_tokens (name, token_hash, created_at) VALUES (?, ?, ?)",
                (name, hash_token(token), now))
            token_id = cursor.lastrowid
        logger.info("phone token created", extra={"token_id": token_id, "token_name": name,
                                                  "client": client or "command line"})
        return PhoneToken(token_id, name, now, None, None, "", 0), token

    def revoke(self, token_id: int, client: str = "") -> PhoneToken:
        """Revoke a token so phones using it get 403 from their next request on.

        Raises LookupError when no token has that ID. Revoking twice keeps the first time.
        """
        if not 0 < token_id <= _MAX_ROW_ID:
            raise _unknown_id(token_id)
        with self.store.write() as connection:
            changed = connection.execute(
                "UPDATE phone_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                (self._clock(), token_id)).rowcount
        if not changed:
            raise _unknown_id(token_id)
        token = self.get(token_id)
        logger.info("phone token revoked", extra={"token_id": token_id, "token_name": token.name,
                                                  "client": client or "command line"})
        return token

    def get(self, token_id: int) -> PhoneToken | None:
        if not 0 < token_id <= _MAX_ROW_ID:
            return None
        row = self.store.reader().execute(
            f"SELECT {_COLUMNS} FROM phone_tokens WHERE id = ?", (token_id,)).fetchone()
        return PhoneToken(*row) if row else None

    def list(self) -> list[PhoneToken]:
        rows = self.store.reader().execute(f"SELECT {_COLUMNS} FROM phone_tokens ORDER BY id")
        return [PhoneToken(*row) for row in rows]

    def recent_uses(self, token_id: int, limit: int = 20) -> list[tuple[str, str, int, float]]:
        """Return (day, client, uses, last_at) rows for one token, newest first."""
        return self.store.reader().execute(
            "SELECT day, client, uses, last_at FROM phone_token_uses WHERE token_id = ? "
            "ORDER BY day DESC, last_at DESC LIMIT ?", (token_id, limit)).fetchall()

    # -- request path ---------------------------------------------------------

    def check(self, token: str) -> tuple[int | None, str]:
        """Return (token ID, "ok") for a live token, else (None, reason).

        The reason is ``missing``, ``unknown`` or ``revoked``; it never contains the token.
        """
        if not token:
            return None, "missing"
        row = self.store.reader().execute(
            "SELECT id, revoked_at FROM phone_tokens WHERE token_hash = ?",
            (hash_token(token),)).fetchone()
        if row is None:
            return None, "unknown"
        if row[1] is not None:
            return None, "revoked"
        return row[0], "ok"

    def note_use(self, token_id: int, client: str) -> None:
        """Count one use in memory; ``flush`` writes the counts to the store."""
        now = self._clock()
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        with self._pending_lock:
            entry = self._pending.get((token_id, client, day))
            if entry is None:
                self._pending[(token_id, client, day)] = [1, now, now]
            else:
                entry[0] += 1
                entry[2] = now

    def flush(self) -> int:
        """Write the uses counted since the last flush; return how many were written.

        On a store error the counts go back into memory for the next try.
        """
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with self.store.write() as connection:
                _write_uses(connection, pending, self._clock())
        except (StoreError, OSError, sqlite3.Error) as error:
            with self._pending_lock:
                for key, (uses, first_at, last_at) in pending.items():
                    entry = self._pending.setdefault(key, [0, first_at, last_at])
                    entry[0] += uses
                    entry[1] = min(entry[1], first_at)
                    entry[2] = max(entry[2], last_at)
            logger.warning("phone token uses not written", extra={"error": str(error)})
            return 0
        return sum(entry[0] for entry in pending.values())


_COLUMNS = "id, name, created_at, revoked_at, last_used_at, last_client, uses"


def _write_uses(connection, pending: dict[tuple[int, str, str], list[float]],
                now: float) -> None:
    for (token_id, client, day), (uses, first_at, last_at) in pending.items():
        connection.execute(
            "INSERT INTO phone_token_uses (token_id, client, day, uses, first_at, last_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token_id, client, day) DO UPDATE SET "
            "uses = uses + excluded.uses, last_at = max(last_at, excluded.last_at)",
            (token_id, client, day, uses, first_at, last_at))
        connection.execute(
            "UPDATE phone_tokens SET uses = uses + ?, "
            "last_client = CASE WHEN coalesce(last_used_at, 0) <= ? THEN ? ELSE last_client END, "
            "last_used_at = max(coalesce(last_used_at, 0), ?) WHERE id = ?",
            (uses, last_at, client, last_at, token_id))
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(now - USE_RETENTION_DAYS * 86400))
    connection.execute("DELETE FROM phone_token_uses WHERE day < ?", (cutoff,))


class TokenUseRecorder:
    """Background worker that writes counted token uses every few seconds."""

    name = "token-uses"

    def __init__(self, tokens: PhoneTokens, interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.tokens = tokens
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker and write what is still counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.tokens.flush()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tokens.flush()
            except Exception:  # the worker must outlive any one bad flush
                logger.exception("phone token worker failed")


def _format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def render_token_table(tokens: list[PhoneToken]) -> str:
    """Render tokens as a plain-text table for the command line."""
    if not tokens:
        return "No phone tokens yet: make one with 'python -m appliance token create NAME'.\n"
    rows = [("ID", "NAME", "CREATED", "LAST USED", "USES", "LAST CLIENT", "STATUS")]
    for token in tokens:
        rows.append((str(token.id), _printable(token.name), _format_time(token.created_at),
                     _format_time(token.last_used_at), str(token.uses),
                     token.last_client or "-", "revoked" if token.is_revoked else "live"))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    return "\n".join(lines) + "\n"


def run_token_command(action: str, tokens: PhoneTokens, out, err, *, name: str = "",
                      token_id: int = 0, base_url: str = "") -> int:
    """Run ``token create|list|revoke`` and print its result; return the exit status."""
    if action == "list":
        out.write(render_token_table(tokens.list()))
        return 0
    if action == "create":
        try:
            record, token = tokens.create(name)
        except ValueError as error:
            err.write(f"error: {error}\n")
            return 1
        out.write(f'Token {record.id} "{record.name}" created. It is shown only this once:\n\n'
                  f"  {token}\n\nDirectory URL for this phone:\n\n"
                  f"  {base_url}/directory?token={token}\n")
        return 0
    try:
        record = tokens.revoke(token_id)
    except LookupError as error:
        err.write(f"error: {error}\n")
        return 1
    name = _printable(record.name)  # made before names were checked, it may hold any text
    out.write(f'Token {record.id} "{name}" revoked: phones that use it get 403 from their '
              "next request.\n")
    return 0
