"""Print what a PyInstaller one-file executable carries, largest parts first.

Usage: python build/size_report.py dist/phonebook-appliance

Needs PyInstaller importable (build/build.sh runs it from the build venv). On
each start the one-file bootloader writes the shared libraries and data files,
uncompressed, to a new _MEI folder, so the "unpacked" column is the disk written
per start. Compiled Python modules stay in the executable's PYZ archive.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from PyInstaller.archive.readers import CArchiveReader

# Table of contents entry type for the archive of compiled Python modules.
PYZ_TYPECODE = "z"
# Entry types the bootloader writes to the _MEI folder: binaries, data files, zip
# files and symlinks (PyInstaller 6). The PYZ and the bootstrap scripts and modules
# are read from the executable itself.
EXTRACTED_TYPECODES = {"b", "x", "Z", "n"}
TOP_ROWS = 12


def _mib(size: int) -> str:
    return f"{size / 2**20:6.2f} MiB"


def summarise_entries(archive: CArchiveReader) -> tuple[list[tuple[str, int, int]], int, int]:
    """Return entries as (name, stored bytes, bytes written per start) and the totals.

    An entry read from the executable in place writes 0 bytes.
    """
    rows = [(name, entry[1], entry[2] if entry[4] in EXTRACTED_TYPECODES else 0)
            for name, entry in archive.toc.items()]
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows, sum(row[1] for row in rows), sum(row[2] for row in rows)


def summarise_modules(archive: CArchiveReader) -> list[tuple[str, int, int]]:
    """Return (top-level package, stored bytes, module count) for the compiled modules."""
    stored: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for name, entry in archive.toc.items():
        if entry[4] != PYZ_TYPECODE:
            continue
        modules = archive.open_embedded_archive(name)
        for module, (_typecode, _offset, length) in modules.toc.items():
            package = module.split(".", 1)[0]
            stored[package] += length
            counts[package] += 1
    rows = [(package, size, counts[package]) for package, size in stored.items()]
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows


def render_report(binary: Path) -> str:
    """Render the size report of one executable as text."""
    archive = CArchiveReader(str(binary))
    entries, stored_total, unpacked_total = summarise_entries(archive)
    modules = summarise_modules(archive)

    lines = [
        f"size report: {binary}",
        f"  executable          {_mib(binary.stat().st_size)}  ({binary.stat().st_size:,} bytes)",
        f"  archive, stored     {_mib(stored_total)}  in {len(entries)} entries",
        f"  unpacked per start  {_mib(unpacked_total)}",
        "",
        f"largest entries (stored, unpacked per start), top {TOP_ROWS}:",
    ]
    lines += [f"  {_mib(stored)}  {_mib(unpacked)}  {name}"
              for name, stored, unpacked in entries[:TOP_ROWS]]
    lines += ["", f"compiled Python modules by top-level package (stored), top {TOP_ROWS}:"]
    lines += [f"  {_mib(size)}  {count:4d} modules  {package}"
              for package, size, count in modules[:TOP_ROWS]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python build/size_report.py EXECUTABLE", file=sys.stderr)
        return 2
    binary = Path(argv[0])
    if not binary.is_file():
        print(f"error: executable {binary} not found: run build/build.sh first", file=sys.stderr)
        return 1
    print(render_report(binary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
