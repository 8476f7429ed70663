"""Import benchmark: 25,000 contacts from a Google Contacts CSV and from a vCard file.

Writes the same generated contacts (one to three numbers each, names with
accents) as a CSV in the current Google layout and as vCard 3.0. Then it runs
``python -m appliance import`` on each file twice: into an empty store, and again
over the contacts it just imported (nothing changes), as an admin's weekly
re-import does. For each it prints the command's wall time, Python's start-up and imports
included, and its peak resident memory from the kernel (``wait4`` ru_maxrss).

    .venv/bin/python -m bench.file_import                 # 25,000 contacts, 3 runs
    .venv/bin/python -m bench.file_import --contacts 1000 --runs 1
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    MIB,
    appliance_config,
    describe_machine,
    generate_contacts,
    python,
    run_measured,
    today,
    write_contacts_csv,
    write_contacts_vcard,
)

IMPORT_TIMEOUT_S = 600
_IMPORTED = re.compile(r"Imported (\d+) contacts with (\d+) numbers")
FORMATS = {"CSV": ("contacts.csv", write_contacts_csv),
           "vCard": ("contacts.vcf", write_contacts_vcard)}


@dataclass
class ImportFigures:
    """One measured import command."""

    file_format: str
    store: str  # "empty" or "same contacts"
    file_bytes: int
    contacts: int
    numbers: int
    wall_s: float
    peak_rss_bytes: int


def run_import(config: Path, path: Path, file_format: str, store: str) -> ImportFigures:
    finished = run_measured([python(), "-m", "appliance", "import", "--config", str(config),
                             str(path)], IMPORT_TIMEOUT_S)
    match = _IMPORTED.search(finished.stdout)
    if finished.returncode != 0 or match is None:
        raise RuntimeError(f"import of {path} exited with {finished.returncode}: "
                           f"{finished.stdout[-500:]} {finished.stderr[-1500:]}")
    return ImportFigures(file_format, store, path.stat().st_size, int(match.group(1)),
                         int(match.group(2)), finished.wall_s, finished.peak_rss_bytes)


def render_table(rows: list[ImportFigures]) -> str:
    lines = ["| format | into | file | contacts | numbers | wall time | peak RSS |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.file_format} | {row.store} store | {row.file_bytes / MIB:.1f} MiB "
                     f"| {row.contacts:,} | {row.numbers:,} | {row.wall_s:.2f} s "
                     f"| {row.peak_rss_bytes / MIB:.1f} MiB |")
    return "\n".join(lines)


def summarise(rows: list[ImportFigures]) -> str:
    lines = []
    for file_format in FORMATS:
        for store in ("empty", "same contacts"):
            picked = [row for row in rows if row.file_format == file_format
                      and row.store == store]
            if picked:
                lines.append(
                    f"{file_format} into {store} store: median "
                    f"{statistics.median(row.wall_s for row in picked):.2f} s, max peak RSS "
                    f"{max(row.peak_rss_bytes for row in picked) / MIB:.1f} MiB over "
                    f"{len(picked)} runs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=25_000,
                        help="contacts in each file (default 25000)")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs per format, each on a new data folder (default 3)")
    args = parser.parse_args(argv)
    if args.contacts < 1 or args.runs < 1:
        parser.error("--contacts and --runs must be at least 1")

    contacts = generate_contacts(args.contacts)
    rows: list[ImportFigures] = []
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        for file_format, (name, write) in FORMATS.items():
            path = folder / name
            write(path, contacts)
            for run in range(args.runs):
                workdir = folder / f"{file_format}-{run}"
                workdir.mkdir()
                config = appliance_config(workdir, 8080)
                for store in ("empty", "same contacts"):
                    rows.append(run_import(config, path, file_format, store))
                    print(f"{file_format} run {run + 1}, {store} store: "
                          f"{rows[-1].wall_s:.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"machine: {describe_machine()}")
    print(f"date: {today()}; command: python -m bench.file_import "
          f"{' '.join(argv or sys.argv[1:])}")
    print()
    print(render_table(rows))
    print()
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
