"""Google sync benchmark: a full sync of 25,000 contacts and a sync with no changes.

Starts the fake Google (``tests/fake_google.py``) in this process on 127.0.0.1
with generated contacts, authorises a new data folder against it, and runs
``python -m appliance sync --full`` and then ``python -m appliance sync`` (an
incremental sync that finds no change) as the admin would. For each it prints
the command's wall time, the sync's own time as the command reports it (without
Python's start-up and imports) and the command's peak resident memory from the
kernel (``wait4`` ru_maxrss). The fake runs in this script's process, on the
same cores, so the time it takes to send each page is inside the wall time, as
Google's would be.

    .venv/bin/python -m bench.sync                        # 25,000 contacts, 3 runs
    .venv/bin/python -m bench.sync --contacts 5000 --runs 1
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import MIB, Finished, describe_machine, python, run_measured, today

SYNC_TIMEOUT_S = 600
# The report's first line, such as "Full sync ok in 6.2 s: 25000 added, ...".
_REPORT = re.compile(r"^(Full|Incremental) sync (\w+) in ([\d.]+) s: (\d+) added, "
                     r"(\d+) changed, (\d+) removed", re.MULTILINE)


@dataclass
class SyncFigures:
    """One measured sync command."""

    kind: str
    outcome: str
    wall_s: float
    sync_s: float
    peak_rss_bytes: int
    added: int
    changed: int
    removed: int
    pages: int


def parse_report(finished: Finished) -> tuple[str, str, float, int, int, int]:
    """Return kind, outcome, seconds and counts from the sync command's report."""
    match = _REPORT.search(finished.stdout)
    if match is None:
        raise RuntimeError(f"sync exited with {finished.returncode} and no report: "
                           f"{finished.stdout[-500:]} {finished.stderr[-1500:]}")
    kind, outcome, seconds, added, changed, removed = match.groups()
    return kind.lower(), outcome, float(seconds), int(added), int(changed), int(removed)


def run_sync(config: Path, fake, full: bool) -> SyncFigures:
    pages_before = len(fake.calls("connections.list"))
    command = [python(), "-m", "appliance", "sync", "--config", str(config)]
    if full:
        command.append("--full")
    finished = run_measured(command, SYNC_TIMEOUT_S)
    kind, outcome, sync_s, added, changed, removed = parse_report(finished)
    if finished.returncode != 0 or outcome != "ok":
        raise RuntimeError(f"sync failed: {finished.stdout[-1000:]}")
    return SyncFigures(kind, outcome, finished.wall_s, sync_s, finished.peak_rss_bytes,
                       added, changed, removed,
                       len(fake.calls("connections.list")) - pages_before)


def prepare(folder: Path, fake) -> Path:
    """Write a config that points at ``fake`` and store credentials for it."""
    from tests.fake_google import write_demo

    config = write_demo(fake, folder, port_for_appliance=8080)
    authorise = run_measured([python(), "-m", "appliance", "auth", "--config", str(config),
                              "--import", str(folder / "authorized_user.json")], 60)
    if authorise.returncode != 0:
        raise RuntimeError(f"auth --import failed: {authorise.stderr[-1000:]}")
    return config


def render_table(rows: list[SyncFigures], contacts: int) -> str:
    lines = [f"| sync of {contacts:,} contacts | pages | changes | command wall time "
             "| sync time (report) | peak RSS |",
             "|---|---:|---|---:|---:|---:|"]
    for row in rows:
        changes = f"{row.added:,} added, {row.changed:,} changed, {row.removed:,} removed"
        lines.append(f"| {row.kind} | {row.pages} | {changes} | {row.wall_s:.2f} s "
                     f"| {row.sync_s:.1f} s | {row.peak_rss_bytes / MIB:.1f} MiB |")
    return "\n".join(lines)


def summarise(rows: list[SyncFigures]) -> str:
    lines = []
    for kind in ("full", "incremental"):
        picked = [row for row in rows if row.kind == kind]
        if picked:
            lines.append(f"{kind}: median wall {statistics.median(r.wall_s for r in picked):.2f} s, "
                         f"max peak RSS {max(r.peak_rss_bytes for r in picked) / MIB:.1f} MiB "
                         f"over {len(picked)} runs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=25_000,
                        help="contacts in the fake Google (default 25000)")
    parser.add_argument("--runs", type=int, default=3,
                        help="full and no-change syncs, each on a new data folder (default 3)")
    args = parser.parse_args(argv)
    if args.contacts < 1 or args.runs < 1:
        parser.error("--contacts and --runs must be at least 1")

    from tests.fake_google import FakeGoogle

    started = time.perf_counter()
    fake = FakeGoogle(contacts=args.contacts).start()
    print(f"fake Google with {args.contacts:,} contacts ready in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    rows: list[SyncFigures] = []
    try:
        for run in range(args.runs):
            folder = Path(tempfile.mkdtemp(prefix="bench-sync-"))
            try:
                config = prepare(folder, fake)
                for full in (True, False):
                    rows.append(run_sync(config, fake, full))
                    print(f"run {run + 1}: {rows[-1].kind} {rows[-1].wall_s:.2f} s",
                          file=sys.stderr, flush=True)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        fake.stop()
    print(f"machine: {describe_machine()}")
    print(f"date: {today()}; command: python -m bench.sync {' '.join(argv or sys.argv[1:])}")
    print()
    print(render_table(rows, args.contacts))
    print()
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
