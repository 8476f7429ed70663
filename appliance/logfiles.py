"""Log files: timed rotation, gzip of rotated files, retention and a size cap.

Rotated files are named ``<file>.<period>[.<n>].gz``, such as ``app.log.2026-12-03.gz``.
``<period>`` is the start, in UTC, of the period the file covers. ``<n>`` numbers the
extra files of a period: a file that reached ``max_file_mib`` early, or a name taken
by an earlier run. Retention and the size cap pick files by that grammar alone,
because the standard library's own selection (``getFilesToDelete``) differs between
CPython releases. CPython 3.11.7 selects ``app.log.2026-12-03.gz`` by a loose "starts
with the base name" test. Releases with the reworked selection match the period with
``fullmatch``, so they would never delete a ``.gz`` file made without a namer.

When a file cannot be written (the folder is missing and cannot be made, the disk is
full), its records go to standard error instead, one warning says so, the failure is
reported by ``WriteState`` for the health check, and the file is tried again every
``retry_interval_s`` seconds.
"""

from __future__ import annotations

import calendar
import gzip
import logging
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path
from typing import Callable, TextIO

logger = logging.getLogger(__name__)

COMPRESSED_SUFFIX = ".gz"
PARTIAL_SUFFIX = ".part"
# On 21 MB of access-log JSON lines (this project's dev container, 2 vCPU), level 6
# took 0.18 s for 10.5 % of the size and level 9 took 0.68 s for 10.0 %.
GZIP_LEVEL = 6
FILE_RETRY_INTERVAL_S = 30.0


@dataclass(frozen=True, order=True)
class RotatedFile:
    """One rotated log file, ordered oldest first."""

    period_start: float
    sequence: int
    path: Path


def parse_rotated_name(name: str, base_name: str, suffix_format: str) -> tuple[float, int] | None:
    """Return (period start as Unix seconds, sequence) for a rotated file's name.

    ``name`` must be ``base_name`` + "." + a time in ``suffix_format`` (UTC), then an
    optional ".<n>" and an optional ".gz"; anything else gives None.
    """
    prefix = base_name + "."
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    if rest.endswith(COMPRESSED_SUFFIX):
        rest = rest[: -len(COMPRESSED_SUFFIX)]
    stamp, _, sequence = rest.partition(".")
    if sequence and not sequence.isdigit():
        return None
    if not re.fullmatch(r"[0-9_-]+", stamp):
        return None
    try:
        period = calendar.timegm(time.strptime(stamp, suffix_format))
    except ValueError:
        return None
    return float(period), int(sequence or 0)


class WriteState:
    """Whether the log files are being written, shared by every file handler.

    The first failure writes one warning to the fallback stream; the recovery of the
    last failing file is logged once through the normal handlers.
    """

    def __init__(self, directory: Path, fallback: Callable[[logging.LogRecord], None],
                 warn: Callable[[str, dict], None]) -> None:
        self.directory = directory
        self._fallback = fallback
        self._warn = warn
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self.failing_since: float | None = None
        self.fallback_records = 0

    @property
    def is_failing(self) -> bool:
        return bool(self._failing)

    @property
    def error(self) -> str:
        """The latest error text of a failing file, or an empty string."""
        with self._lock:
            return next(reversed(self._failing.values()), "")

    def failed(self, file_name: str, error: BaseException) -> None:
        text = _describe_error(error)
        with self._lock:
            first = not self._failing
            self._failing[file_name] = text
            if first:
                self.failing_since = time.time()
        if first:
            self._warn("log files cannot be written, logging to standard error", {
                "log_dir": str(self.directory), "file": file_name, "error": text,
                "retry_interval_s": FILE_RETRY_INTERVAL_S})

    def recovered(self, file_name: str) -> None:
        with self._lock:
            if self._failing.pop(file_name, None) is None or self._failing:
                return
            since, self.failing_since = self.failing_since, None
        # Logged from a new thread: this runs inside a handler that holds its lock,
        # and logging from here could wait on another handler's lock.
        duration_s = round(time.time() - since, 1) if since else None
        threading.Thread(
            target=logger.info, name="log-recovered",
            args=("log files writable again",),
            kwargs={"extra": {"log_dir": str(self.directory), "failed_for_s": duration_s}},
            daemon=True).start()

    def write_fallback(self, record: logging.LogRecord) -> None:
        if getattr(record, "_fallback_written", False):
            return  # app.log and errors.log both failing: write an error once
        record._fallback_written = True
        with self._lock:
            self.fallback_records += 1
        self._fallback(record)


def _describe_error(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return f"{type(error).__name__}: {error}"


class LogDirectory:
    """The log folder: compresses rotated files and keeps it under a size cap.

    Compression runs on a short-lived thread per rotated file, so the request that
    happened to trigger the rotation does not wait for gzip.
    """

    def __init__(self, path: Path, max_total_bytes: int) -> None:
        self.path = path
        self.max_total_bytes = max_total_bytes
        # base name -> time format of its rotated files' period
        self._files: dict[str, str] = {}
        self._cap_lock = threading.Lock()
        self._jobs_lock = threading.Lock()
        self._jobs: list[threading.Thread] = []
        self.deleted_for_cap = 0

    def register(self, base_name: str, suffix_format: str) -> None:
        self._files[base_name] = suffix_format

    def ensure_exists(self) -> None:
        """Create the folder, readable by its owner only (log lines name callers)."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def rotated_files(self, base_name: str | None = None) -> list[RotatedFile]:
        """Return the rotated files of one log (or of all), oldest first."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return []
        found = []
        bases = [base_name] if base_name else list(self._files)
        for name in names:
            for base in bases:
                parsed = parse_rotated_name(name, base, self._files[base])
                if parsed is not None:
                    found.append(RotatedFile(parsed[0], parsed[1], self.path / name))
        return sorted(found)

    def size_bytes(self) -> int:
        """Return the total size of the active and rotated log files."""
        total = 0
        for path in self._active_paths() + [item.path for item in self.rotated_files()]:
            try:
                total += path.stat().st_size
            except OSError:
                continue
        return total

    def _active_paths(self) -> list[Path]:
        return [self.path / base for base in self._files]

    def delete_beyond(self, base_name: str, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` rotated files of one log."""
        files = self.rotated_files(base_name)
        doomed = [item.path for item in files[: max(0, len(files) - keep)]]
        for path in doomed:
            _remove_quietly(path)
        return doomed

    def enforce_cap(self) -> list[Path]:
        """Delete the oldest rotated files until the folder is within the size cap.

        The active files are counted but never deleted; ``max_file_mib`` bounds them.
        """
        deleted: list[Path] = []
        with self._cap_lock:
            total = self.size_bytes()
            for item in self.rotated_files():
                if total <= self.max_total_bytes:
                    break
                try:
                    size = item.path.stat().st_size
                except OSError:
                    continue
                if _remove_quietly(item.path):
                    total -= size
                    deleted.append(item.path)
            self.deleted_for_cap += len(deleted)
        return deleted

    def compress_later(self, path: Path) -> None:
        """Gzip ``path`` on a background thread, then apply the size cap."""
        job = threading.Thread(target=self._compress_and_cap, args=(path,),
                               name="log-compress", daemon=True)
        with self._jobs_lock:
            self._jobs = [old for old in self._jobs if old.is_alive()] + [job]
        job.start()

    def compress_leftovers(self) -> None:
        """Compress rotated files left uncompressed by a stop during compression."""
        for partial in self.path.glob(f"*{COMPRESSED_SUFFIX}{PARTIAL_SUFFIX}"):
            _remove_quietly(partial)
        for item in self.rotated_files():
            if item.path.suffix != COMPRESSED_SUFFIX:
                self.compress_later(item.path)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait for running compressions; tell whether all of them finished."""
        deadline = time.monotonic() + timeout_s
        with self._jobs_lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.join(max(0.0, deadline - time.monotonic()))
        return not any(job.is_alive() for job in jobs)

    def _compress_and_cap(self, path: Path) -> None:
        try:
            compressed = compress_file(path)
        except OSError as error:
            logger.warning("log file compression failed", extra={
                "file": str(path), "error": _describe_error(error)})
            return
        if compressed is not None:
            logger.debug("log file compressed", extra={"file": str(compressed)})
        deleted = self.enforce_cap()
        if deleted:
            logger.warning("old log files deleted to keep the log dir under its size cap", extra={
                "log_dir": str(self.path), "deleted_files": len(deleted),
                "max_total_bytes": self.max_total_bytes})


def compress_file(path: Path) -> Path | None:
    """Gzip ``path`` to ``path.gz`` and delete it; return None if it vanished.

    The data goes to a ``.gz.part`` file first and is renamed into place, so a stop
    half-way never leaves a truncated ``.gz`` that looks complete. If retention
    deleted the source meanwhile, the copy is dropped too.
    """
    target = path.with_name(path.name + COMPRESSED_SUFFIX)
    partial = path.with_name(target.name + PARTIAL_SUFFIX)
    try:
        with open(path, "rb") as source, gzip.open(partial, "wb", GZIP_LEVEL) as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        stat = path.stat()
    except FileNotFoundError:
        _remove_quietly(partial)
        return None
    except OSError:
        _remove_quietly(partial)
        raise
    os.utime(partial, (stat.st_atime, stat.st_mtime))
    os.replace(partial, target)
    _remove_quietly(path)
    return target


def _remove_quietly(path: Path) -> bool:
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


class RotatingLogFile(TimedRotatingFileHandler):
    """A TimedRotatingFileHandler that gzips, bounds file size and survives write errors.

    Rotation happens in ``emit`` (there is no timer), at the first record after the
    period ends. At start the period is worked out from the existing file's
    modification time, so a file last written before a long stop rotates on the
    first record after the restart and is named for the period it covers.
    """

    def __init__(self, path: Path, *, when: str, interval: int, backup_count: int,
                 max_bytes: int, directory: LogDirectory, state: WriteState,
                 retry_interval_s: float = FILE_RETRY_INTERVAL_S) -> None:
        super().__init__(path, when=when, interval=interval, backupCount=backup_count,
                         encoding="utf-8", delay=True, utc=True, errors="backslashreplace")
        self.max_bytes = max_bytes
        self.directory = directory
        self.state = state
        self.retry_interval_s = retry_interval_s
        self._retry_at: float | None = None
        self._rolling_for_size = False
        self._emit_failed = False
        directory.register(os.path.basename(self.baseFilename), self.suffix)

    # -- writing, with a fallback --------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            self.state.write_fallback(record)
            return
        self._emit_failed = False
        super().emit(record)  # calls handleError instead of raising
        if self._retry_at is not None and not self._emit_failed:
            self._retry_at = None
            self.state.recovered(os.path.basename(self.baseFilename))

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        self._emit_failed = True
        self.mark_failed(error)
        self.state.write_fallback(record)

    def mark_failed(self, error: OSError) -> None:
        """Send records to the fallback until the next retry, and report the error."""
        self._retry_at = time.monotonic() + self.retry_interval_s
        self._close_stream_quietly()
        self.state.failed(os.path.basename(self.baseFilename), error)

    def _close_stream_quietly(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass  # the data it still held is what could not be written

    def _open(self) -> TextIO:
        self.directory.ensure_exists()
        return super()._open()

    # -- rotation ----------------------------------------------------------------

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        self._rolling_for_size = False
        if super().shouldRollover(record):
            return True
        if self.max_bytes and self._current_size() >= self.max_bytes:
            self._rolling_for_size = True
            return True
        return False

    def _current_size(self) -> int:
        if self.stream is not None:
            return self.stream.tell()
        try:
            return os.path.getsize(self.baseFilename)
        except OSError:
            return 0

    def doRollover(self) -> None:
        # A rotation for size keeps the period's end, so the next rotation by time
        # still happens at the end of the period.
        period_end = self.rolloverAt
        super().doRollover()
        if self._rolling_for_size:
            self.rolloverAt = period_end

    def rotation_filename(self, default_name: str) -> str:
        """Return ``default_name``, or it with ".<n>" when that period's name is taken.

        The standard handler deletes an existing file of the same name before it
        rotates; a second name keeps those lines instead.
        """
        candidate, sequence = default_name, 0
        while any(os.path.exists(candidate + ending)
                  for ending in ("", COMPRESSED_SUFFIX, COMPRESSED_SUFFIX + PARTIAL_SUFFIX)):
            sequence += 1
            candidate = f"{default_name}.{sequence}"
        return candidate

    def rotate(self, source: str, dest: str) -> None:
        if os.path.exists(source):
            os.rename(source, dest)
            self.directory.compress_later(Path(dest))

    def getFilesToDelete(self) -> list[str]:
        """Delete rotated files beyond ``backupCount`` here and return none.

        The base class would delete the returned files itself, and it fails on a file
        that a compression thread replaced meanwhile. This selection is also the same
        on every CPython release (see the module docstring).
        """
        self.directory.delete_beyond(os.path.basename(self.baseFilename), self.backupCount)
        return []
