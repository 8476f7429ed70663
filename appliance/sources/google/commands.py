"""Command-line subcommands for Google: ``auth``, ``sync`` and ``status``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Callable, TextIO

from appliance.config import Config
from appliance.sources.google import auth
from appliance.sources.google.client import Stopped
from appliance.sources.google.runs import INTERRUPTED_ERROR, KEEP_RUNS, recent_runs
from appliance.sources.google.sync import (
    ContactChange,
    GoogleSync,
    SyncResult,
    is_sync_lock_held,
    stored_labels,
)
from appliance.store import Store

EXIT_OK = 0
EXIT_FAILED = 1
REPORT_LIMIT = 100  # names listed per kind of change; the rest are counted


def add_commands(commands: argparse._SubParsersAction,
                 add_config_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``auth``, ``sync`` and ``status`` to the CLI's subcommands."""
    do_auth = commands.add_parser(
        "auth", help="authorise access to Google contacts (consent link, or --import)")
    add_config_option(do_auth)
    do_auth.add_argument("--import", dest="import_file", type=Path, metavar="FILE",
                         help="store authorised-user credentials (JSON with a refresh "
                              "token) made elsewhere, instead of the consent link")
    do_auth.set_defaults(handler=cmd_auth)

    sync = commands.add_parser("sync", help="sync contacts from Google now")
    add_config_option(sync)
    sync.add_argument("--full", action="store_true",
                      help="fetch every contact instead of the changes since the last sync")
    sync.add_argument("--dry-run", action="store_true",
                      help="fetch and report the changes without writing anything")
    sync.set_defaults(handler=cmd_sync)

    status = commands.add_parser("status", help="show Google authorisation and recent syncs")
    add_config_option(status)
    status.add_argument("--runs", type=int, default=20, metavar="N",
                        help=f"number of recent syncs to list (at most {KEEP_RUNS})")
    status.set_defaults(handler=cmd_status)


# ---------------------------------------------------------------------------
# auth


def cmd_auth(args: argparse.Namespace, config: Config) -> int:
    if args.import_file is not None:
        target = auth.import_authorised_user(config, args.import_file)
        print(f"Credentials stored in {target} (mode 0600). Run 'sync' to fetch contacts.")
        return EXIT_OK
    if auth.uses_service_account(config):
        print(f"[google] service_account_key is set, so the service account acting as "
              f"{config.google.subject} is used and no consent is needed. Run 'sync'.")
        return EXIT_OK
    pending = auth.start_consent(config)
    print("1. Open this address in a browser on any computer, sign in with the Google "
          "account whose contacts the phones should show, and allow access:\n")
    print(f"   {pending.url}\n")
    print(f"2. The browser then goes to an address starting with {pending.redirect_uri} "
          "that does not load. Copy that whole address from the address bar.\n")
    pasted = _read_line("3. Paste it here and press Enter: ")
    target = auth.finish_consent(config, pending, pasted)
    print(f"Authorised. Credentials stored in {target} (mode 0600). Run 'sync' to fetch "
          "contacts.")
    return EXIT_OK


def _read_line(prompt: str) -> str:
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    return line.strip()


# ---------------------------------------------------------------------------
# sync


class ProgressBar:
    """A one-line progress bar on a terminal; prints nothing elsewhere."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._shown = False

    def __call__(self, method: str, fetched: int, total: int | None) -> None:
        if not self.enabled:
            return
        if total:
            done = min(fetched / total, 1.0)
            filled = int(done * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            line = f"\r{method:<28} [{bar}] {fetched}/{total}"
        else:
            line = f"\r{method:<28} {fetched} fetched"
        self.stream.write(line)
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def cmd_sync(args: argparse.Namespace, config: Config) -> int:
    if not auth.is_configured(config):
        print("error: Google is not set up: set [google] client_secrets and run 'auth', "
              "run 'auth --import FILE', or set [google] service_account_key.",
              file=sys.stderr)
        return EXIT_FAILED
    from appliance.events import Events

    store = Store.open(config.storage.data_dir)
    progress = ProgressBar(sys.stderr)
    try:
        sync = GoogleSync(config, store, Events())
        with StopOnSignal(sync):
            result = sync.run(full=args.full, dry_run=args.dry_run, progress=progress)
    finally:
        progress.finish()
        store.close()
    write_report(result, sys.stdout)
    return EXIT_OK if result.outcome == "ok" else EXIT_FAILED


class StopOnSignal:
    """Stop the sync running in the main thread on SIGTERM or SIGINT (Ctrl-C).

    The handler raises Stopped where the sync is, even inside a blocking call to
    Google, so the sync records its run as failed and releases its lock instead of
    leaving it "running". A second signal gets the handler that was there before,
    so it ends the process at once.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, sync: GoogleSync) -> None:
        self.sync = sync
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopOnSignal":
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._restore()
        self.sync.stop_event.set()
        raise Stopped(f"The sync was stopped by {signal.Signals(signum).name} before it "
                      "finished.")


def write_report(result: SyncResult, out: TextIO) -> None:
    """Print the outcome and who was added, changed and removed."""
    counts = result.counts
    head = (f"{result.kind.capitalize()} sync {result.outcome} in {result.duration_s:.1f} s: "
            f"{counts['added']} added, {counts['updated']} changed, "
            f"{counts['deleted']} removed")
    if result.dry_run:
        head += " (dry run: nothing was written)"
    out.write(head + "\n")
    if result.error:
        out.write(f"error: {result.error}\n")
    for title, mark, changes in (("Added", "+", result.added), ("Changed", "~", result.updated),
                                 ("Removed", "-", result.deleted)):
        _write_changes(out, title, mark, changes)


def _write_changes(out: TextIO, title: str, mark: str, changes: list[ContactChange]) -> None:
    if not changes:
        return
    out.write(f"{title} ({len(changes)}):\n")
    for change in sorted(changes, key=lambda item: item.name.casefold())[:REPORT_LIMIT]:
        out.write(f"  {mark} {change.name}\n")
    if len(changes) > REPORT_LIMIT:
        out.write(f"  ... and {len(changes) - REPORT_LIMIT} more\n")


# ---------------------------------------------------------------------------
# status


def _when(value: str | float | None) -> str:
    if value in (None, ""):
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    store = Store.open(config.storage.data_dir)
    try:
        write_status(config, store, max(1, min(args.runs, KEEP_RUNS)), sys.stdout)
    finally:
        store.close()
    return EXIT_OK


def write_status(config: Config, store: Store, run_count: int, out: TextIO) -> None:
    """Print the authorisation state, sync state keys and the recent runs."""
    state = store.get_state("google.authorisation") or (
        "not_configured" if not auth.is_configured(config) else "unknown")
    shown = {"ok": "authorised", "needed": "authorisation needed",
             "not_configured": "not configured"}.get(state, state)
    counts = store.count_by_source()
    out.write(f"Google:               {shown}\n")
    out.write(f"Last sync attempt:    {_when(store.get_state('sync.last_attempt_at'))}\n")
    out.write(f"Last successful sync: {_when(store.get_state('sync.last_success_at'))}\n")
    out.write(f"Failures in a row:    {store.get_state('sync.consecutive_failures', '0')}\n")
    last_error = store.get_state("sync.last_error", "")
    if last_error:
        out.write(f"Last error:           {last_error}\n")
    out.write("Contacts:             " + (", ".join(
        f"{source} {count}" for source, count in counts.items()) or "none") + "\n")
    labels = stored_labels(store)
    out.write(f"Google labels:        {', '.join(labels) if labels else 'none'}\n")
    runs = recent_runs(store, run_count)
    if not runs:
        out.write("\nNo sync has run yet.\n")
        return
    # A run still "running" while no process holds the sync lock was killed. The
    # next sync marks it interrupted in the store, and status shows it so already.
    if any(run.outcome == "running" for run in runs) and not is_sync_lock_held(
            Path(config.storage.data_dir)):
        for run in runs:
            if run.outcome == "running":
                run.outcome, run.error = "interrupted", INTERRUPTED_ERROR
    out.write(f"\n{'started':<20} {'kind':<12} {'outcome':<12} {'took':>7}  "
              f"{'added':>6} {'changed':>7} {'removed':>7}  error\n")
    for run in runs:
        took = "" if run.duration_s is None else f"{run.duration_s:.1f}s"
        out.write(f"{_when(run.started_at):<20} {run.kind:<12} {run.outcome:<12} {took:>7}  "
                  f"{run.added:>6} {run.updated:>7} {run.deleted:>7}  {run.error}\n")
