"""Import of contact files: Google Contacts CSV exports and vCard files.

``run_import`` reads the whole file first and changes the store only when the
file parsed to the end, so a broken file leaves the directory as it was. The
imported contacts then replace the previous import, and the sample contacts, in
one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, TextIO

from appliance.config import Config
from appliance.context import run_id as run_id_context
from appliance.directory.dialplan import DialPlan
from appliance.directory.numbers import parse_number
from appliance.errors import ImportFileError
from appliance.events import Events
from appliance.model import Contact
from appliance.sources.csvfile import GoogleCsvReader, decode_lines
from appliance.sources.entries import ParsedEntry
from appliance.sources.vcard import VCardReader
from appliance.store import ChangeReport, Store

logger = logging.getLogger(__name__)

IMPORT_SOURCE = "import"
# Skipped entries listed one by one in the summary; the rest are counted by reason.
SKIPPED_SHOWN = 50
# Bytes read to tell a vCard file from a CSV file.
_SNIFF_BYTES = 4096
# A Google account holds at most 25,000 contacts. A file with far more entries is
# not a contact export, and reading it whole would use more memory than a small box
# has (about 1 GB for a million entries).
MAX_ENTRIES = 100_000

NO_NAME_NO_NUMBER = "no name and no number"
NO_NUMBER = "no phone number"
UNREADABLE = "cannot be read"


@dataclass
class SkippedEntry:
    """A row or card that was read but not imported, and why."""

    location: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}{self.detail}"


@dataclass
class ImportResult:
    """Contacts parsed from one file, ready for the store, and what was left out."""

    path: Path
    format_name: str
    read: int = 0
    contacts: list[Contact] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


def read_contact_file(path: Path, config: Config, source: str = IMPORT_SOURCE) -> ImportResult:
    """Parse a Google Contacts CSV or vCard file into contacts of ``source``.

    The format is detected from the content, not the file name. Numbers get their
    E.164 form and extension from the ``[dialplan] home_country``. Raises
    ImportFileError when the file is missing or cannot be parsed to its end.
    """
    path = Path(path)
    with _open(path) as handle:
        try:
            return _read(handle, path, config, source)
        except OSError as error:
            raise ImportFileError(f"{path} cannot be read: {error.strerror or error}.") from None


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ImportFileError(
            f"{path} not found. Check the path of the CSV or vCard file to import.") from None
    except IsADirectoryError:
        raise ImportFileError(
            f"{path} is a folder. Give the path of a CSV or vCard file.") from None
    except OSError as error:
        raise ImportFileError(f"{path} cannot be opened: {error.strerror or error}.") from None


def _read(handle: BinaryIO, path: Path, config: Config, source: str) -> ImportResult:
    entries: Iterable[ParsedEntry]
    if _is_vcard(handle):
        entries = VCardReader(handle)
        format_name = "vCard"
    else:
        reader = GoogleCsvReader(decode_lines(handle))
        entries = reader
        format_name = reader.layout.name
    builder = _ContactBuilder(source, DialPlan.from_config(config), path.name)
    result = ImportResult(path=path, format_name=format_name)
    for entry in entries:
        if result.read >= MAX_ENTRIES:
            raise ImportFileError(
                f"the file has more than {MAX_ENTRIES} entries, more than a Google account "
                "holds. Check that it is a contact export, or split it.")
        builder.add(entry, result)
    return result


def _is_vcard(handle: BinaryIO) -> bool:
    """Tell a vCard file from a CSV file by its first bytes, then rewind."""
    start = handle.read(_SNIFF_BYTES)
    handle.seek(0)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError(
            "the file is UTF-16 text. Save it as UTF-8 (or export the contacts again) and "
            "import it again.")
    text = start.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not text:
        raise ImportFileError(
            "the file is empty. Export the contacts again as Google CSV or vCard.")
    return text[:11].upper() == b"BEGIN:VCARD"


class _ContactBuilder:
    """Finish parsed entries: parse numbers, give source ids, decide what to skip."""

    def __init__(self, source: str, dial_plan: DialPlan, file_name: str) -> None:
        self.source = source
        self.dial_plan = dial_plan
        self.home_country = dial_plan.home_country
        self.file_name = file_name
        self._id_counts: Counter[str] = Counter()

    def add(self, entry: ParsedEntry, result: ImportResult) -> None:
        result.read += 1
        contact = entry.contact
        if contact is None:
            result.skipped.append(SkippedEntry(entry.location, UNREADABLE, f": {entry.problem}"))
            return
        unusable = self._parse_numbers(contact)
        if not contact.numbers:
            result.skipped.append(_skipped_for_no_number(entry.location, contact, unusable))
            return
        contact.source = self.source
        contact.source_id = self._source_id(contact)
        contact.origin = f"{self.file_name} {entry.location}"
        result.contacts.append(contact)

    def _parse_numbers(self, contact: Contact) -> list[str]:
        """Fill the parsed forms, drop numbers a phone cannot dial and say why.

        The dial plan decides, so the contacts imported are those the phones list.
        """
        kept, unusable = [], []
        has_primary = False
        for number in contact.numbers:
            if not any(character.isdigit() for character in number.raw):
                unusable.append(f'"{number.raw}" has no digits')
                continue
            number.e164, number.extension = parse_number(number.raw, self.home_country)
            if self.dial_plan.dial_string(number.raw, number.e164, number.extension) is None:
                reason = self.dial_plan.explain_undialable(number.raw)
                unusable.append(f'"{number.raw}" {reason}')
                continue
            # A contact has one primary number: the first one marked as such.
            number.is_primary = number.is_primary and not has_primary
            has_primary = has_primary or number.is_primary
            kept.append(number)
        contact.numbers = kept
        return unusable

    def _source_id(self, contact: Contact) -> str:
        """Return an id that stays the same when the same file is imported again.

        It is a digest of the name fields (or, for a contact with no name, of its
        numbers), with a counter for the second and later contacts of one name.
        """
        names = (contact.given_name, contact.middle_name, contact.family_name,
                 contact.display_name, contact.nickname, contact.company)
        if any(names):
            key = "name\x1f" + "\x1f".join(name.casefold() for name in names)
        else:
            key = "number\x1f" + "\x1f".join(
                "".join(character for character in number.raw if character.isdigit())
                for number in contact.numbers)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
        self._id_counts[digest] += 1
        count = self._id_counts[digest]
        return digest if count == 1 else f"{digest}-{count}"


def _skipped_for_no_number(location: str, contact: Contact, unusable: list[str]) -> SkippedEntry:
    name = _shown_name(contact)
    if not name and not unusable:
        return SkippedEntry(location, NO_NAME_NO_NUMBER)
    details = []
    if name:
        details.append(f'"{name}"')
    details += unusable
    return SkippedEntry(location, NO_NUMBER, f" ({', '.join(details)})")


def _shown_name(contact: Contact) -> str:
    person = " ".join(part for part in (contact.given_name, contact.family_name) if part)
    return contact.display_name or person or contact.nickname or contact.company


def run_import(store: Store, config: Config, path: Path, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr, events: Events | None = None) -> int:
    """Replace the imported contacts with those of one file and print a summary.

    Returns the exit status: 0 when the contacts were imported, 1 when the file is
    missing, cannot be parsed or has no contact with a number. In those cases the
    store is unchanged. Emits ``import.finished`` on ``events`` when given.
    """
    path = Path(path)
    run_id = uuid.uuid4().hex[:12]
    token = run_id_context.set(run_id)
    started = time.monotonic()
    try:
        result = _read_for_import(path, config, err)
        if result is None or not _has_contacts(result, out, err):
            _finish(events, run_id, path, result, "error")
            return 1
        samples = store.count_by_source().get("sample", 0)
        with store.write() as connection:
            report = store.replace_source(IMPORT_SOURCE, result.contacts, connection=connection)
            store.set_state("import.last_at", str(int(time.time())), connection=connection)
    except BaseException:
        _finish(events, run_id, path, None, "error")
        raise
    finally:
        run_id_context.reset(token)

    _print_changes(out, result, report, samples)
    logger.info("import finished", extra={
        "run_id": run_id, "path": str(path), "format": result.format_name,
        "read": result.read, "imported": len(result.contacts), "skipped": len(result.skipped),
        **report.counts, "duration_s": round(time.monotonic() - started, 3)})
    _finish(events, run_id, path, result, "ok")
    return 0


def _read_for_import(path: Path, config: Config, err: TextIO) -> ImportResult | None:
    """Read the file, or print why it cannot be imported and return None."""
    try:
        return read_contact_file(path, config)
    except ImportFileError as error:
        text = str(error)
        if not text.startswith(str(path)):
            text = f"cannot import {path}: {text}"
        print(f"error: {text} Nothing was imported, and the directory is unchanged.",
              file=err)
        logger.warning("import failed", extra={"path": str(path), "error": str(error)})
        return None


def _has_contacts(result: ImportResult, out: TextIO, err: TextIO) -> bool:
    """Print what was read and skipped; tell whether any contact can be imported."""
    print(f"Read {_count(result.read, 'entry', 'entries')} from {result.path.name} "
          f"({result.format_name}); skipped {len(result.skipped)}.", file=out)
    _print_skipped(out, result.skipped)
    if result.contacts:
        return True
    print(f"error: no entry in {result.path} has a phone number. Nothing was imported, "
          "and the directory is unchanged.", file=err)
    logger.warning("import failed", extra={"path": str(result.path), "read": result.read,
                                           "error": "no contact with a phone number"})
    return False


def _print_skipped(out: TextIO, skipped: list[SkippedEntry]) -> None:
    if not skipped:
        return
    print("Skipped:", file=out)
    for entry in skipped[:SKIPPED_SHOWN]:
        print(f"  {entry}", file=out)
    rest = skipped[SKIPPED_SHOWN:]
    if rest:
        by_reason = Counter(entry.reason for entry in rest)
        counts = ", ".join(f"{count} {reason}" for reason, count in by_reason.most_common())
        print(f"  and {len(rest)} more: {counts}", file=out)


def _print_changes(out: TextIO, result: ImportResult, report: ChangeReport,
                   samples: int) -> None:
    numbers = sum(len(contact.numbers) for contact in result.contacts)
    print(f"Imported {_count(len(result.contacts), 'contact')} with "
          f"{_count(numbers, 'number')}.", file=out)
    counts = report.counts
    line = (f"Directory: {counts['added']} added, {counts['updated']} updated, "
            f"{counts['deleted']} deleted since the previous import")
    if samples:
        line += f"; {_count(samples, 'sample contact')} removed"
    print(line + ".", file=out)


def _count(count: int, singular: str, plural: str = "") -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _finish(events: Events | None, run_id: str, path: Path, result: ImportResult | None,
            outcome: str) -> None:
    if events is None:
        return
    events.emit("import.finished", run_id=run_id, path=str(path),
                read=result.read if result else 0,
                imported=len(result.contacts) if result and outcome == "ok" else 0,
                skipped=len(result.skipped) if result else 0, outcome=outcome)
