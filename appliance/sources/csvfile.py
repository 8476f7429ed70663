"""Google Contacts CSV exports, in the current layout and the older one.

Both layouts have one row per contact and numbered column groups such as
``Phone 1 - Label`` and ``Phone 1 - Value``. A cell that contains several values
joins them with `` ::: ``, and a leading ``* `` on a type marks the primary number
or, in a label cell, one of Google's own groups such as ``* myContacts``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from appliance.errors import ImportFileError
from appliance.model import Contact, PhoneNumber
from appliance.sources.entries import (
    ParsedEntry,
    check_line,
    clean_text,
    is_system_group,
    normalize_type_label,
)

VALUE_SEPARATOR = ":::"
_PHONE_COLUMN = re.compile(r"Phone (\d+) - (Label|Type|Value)")


@dataclass(frozen=True)
class CsvLayout:
    """Column names of the contact fields in one CSV layout."""

    name: str
    required: tuple[str, ...]
    given_name: str
    middle_name: str
    family_name: str
    display_name: str
    nickname: str
    company: str
    job_title: str
    labels: str


CURRENT_LAYOUT = CsvLayout(
    name="Google Contacts CSV, current layout",
    required=("First Name", "Last Name", "Labels"),
    given_name="First Name", middle_name="Middle Name", family_name="Last Name",
    display_name="", nickname="Nickname", company="Organization Name",
    job_title="Organization Title", labels="Labels",
)
OLDER_LAYOUT = CsvLayout(
    name="Google Contacts CSV, older layout",
    required=("Name", "Given Name", "Family Name", "Group Membership"),
    given_name="Given Name", middle_name="Additional Name", family_name="Family Name",
    display_name="Name", nickname="Nickname", company="Organization 1 - Name",
    job_title="Organization 1 - Title", labels="Group Membership",
)
LAYOUTS = (CURRENT_LAYOUT, OLDER_LAYOUT)


def decode_lines(binary_lines: Iterable[bytes]) -> Iterator[str]:
    """Decode lines of a UTF-8 file, with or without a byte order mark.

    Lines keep their line endings, so the csv module can rebuild quoted cells that
    span lines. Raises ImportFileError naming the first line that is not UTF-8
    text.
    """
    for number, raw in enumerate(binary_lines, start=1):
        raw = check_line(number, raw)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportFileError(
                f"line {number} is not UTF-8 text (byte 0x{raw[error.start]:02x} at column "
                f"{error.start + 1}). Save the file with UTF-8 encoding and import it again."
            ) from None


def detect_layout(header: list[str]) -> CsvLayout:
    """Return the layout whose required columns all appear in ``header``.

    Raises ImportFileError that lists the columns each layout needs.
    """
    columns = {cell.strip() for cell in header}
    for layout in LAYOUTS:
        if all(name in columns for name in layout.required):
            return layout
    hint = ""
    if {"Business Phone", "Mobile Phone"} & columns:
        hint = (" The columns look like an Outlook CSV export: export from Google Contacts "
                "with 'Google CSV', or save the contacts as a vCard (.vcf) file.")
    shown = ", ".join(header[:6]) + (", …" if len(header) > 6 else "")
    raise ImportFileError(
        f'line 1: the header "{shown}" matches neither Google Contacts CSV layout: expected '
        f"the columns {', '.join(CURRENT_LAYOUT.required)} (current layout) or "
        f"{', '.join(OLDER_LAYOUT.required)} (older layout).{hint}")


class GoogleCsvReader:
    """Read a Google Contacts CSV export row by row, one ParsedEntry per row.

    Reading the header happens on construction, so a file in neither layout
    raises ImportFileError before any row is read.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        # strict: a stray quote after a closing quote, and a quoted cell still open at
        # the end of the file, raise csv.Error instead of being read as text.
        self._reader = csv.reader(lines, strict=True)
        header = self._next_row(1)
        if header is None:
            raise ImportFileError("line 1: the file has no header row.")
        self.layout = detect_layout(header)
        self._width = len(header)
        self._column: dict[str, int] = {}
        for index, name in enumerate(header):
            self._column.setdefault(name.strip(), index)
        self._phone_columns = _phone_columns(header)

    def __iter__(self) -> Iterator[ParsedEntry]:
        while True:
            start = self._reader.line_num + 1
            row = self._next_row(start)
            if row is None:
                return
            if not any(cell.strip() for cell in row):
                continue  # a blank line, or a row of empty cells
            yield self._entry(start, row)

    def _next_row(self, start: int) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except csv.Error as error:
            raise ImportFileError(_describe_csv_error(error, start, self._reader.line_num))

    def _entry(self, line: int, row: list[str]) -> ParsedEntry:
        if len(row) > self._width:
            return ParsedEntry(line, None, None, (
                f"the row has {len(row)} cells but the header has {self._width}; a cell "
                "with a comma may be missing its quotes"))
        layout = self.layout

        def cell(name: str) -> str:
            index = self._column.get(name)
            if not name or index is None or index >= len(row):
                return ""
            return row[index]

        contact = Contact(
            source="", source_id="",
            given_name=clean_text(cell(layout.given_name)),
            middle_name=clean_text(cell(layout.middle_name)),
            family_name=clean_text(cell(layout.family_name)),
            display_name=clean_text(cell(layout.display_name)),
            nickname=_first_value(cell(layout.nickname)),
            company=_first_value(cell(layout.company)),
            job_title=_first_value(cell(layout.job_title)),
            labels=_labels(cell(layout.labels)),
            numbers=self._numbers(row),
        )
        return ParsedEntry(line, None, contact)

    def _numbers(self, row: list[str]) -> list[PhoneNumber]:
        numbers = []
        for type_index, value_index in self._phone_columns:
            if value_index >= len(row):
                continue
            type_text = row[type_index] if type_index is not None and type_index < len(row) else ""
            type_text = type_text.strip()
            is_primary = type_text.startswith("*")
            type_label = normalize_type_label(type_text.lstrip("* "))
            for raw in _split_values(row[value_index]):
                numbers.append(PhoneNumber(raw=raw, type_label=type_label, is_primary=is_primary))
                # The primary mark belongs to the first number of a joined cell.
                is_primary = False
        return numbers


def _phone_columns(header: list[str]) -> list[tuple[int | None, int]]:
    """Return (type column, value column) index pairs, in the order Phone 1, 2, …"""
    types: dict[int, int] = {}
    values: dict[int, int] = {}
    for index, name in enumerate(header):
        match = _PHONE_COLUMN.fullmatch(name.strip())
        if match is None:
            continue
        group = int(match.group(1))
        target = values if match.group(2) == "Value" else types
        target.setdefault(group, index)
    return [(types.get(group), values[group]) for group in sorted(values)]


def _split_values(text: str) -> list[str]:
    values = (clean_text(part) for part in text.split(VALUE_SEPARATOR))
    return [value for value in values if value]


def _first_value(text: str) -> str:
    values = _split_values(text)
    return values[0] if values else ""


def _labels(text: str) -> list[str]:
    labels: list[str] = []
    for label in _split_values(text):
        if not is_system_group(label) and label not in labels:
            labels.append(label)
    return labels


def _describe_csv_error(error: csv.Error, start: int, current: int) -> str:
    text = str(error)
    if "unexpected end of data" in text:
        return (f"line {start}: a quoted cell that starts in this row is never closed, so "
                "the file ends inside it. The file may be cut short, or a quote is missing.")
    if "expected after" in text:
        return (f'line {current}: a quote inside a quoted cell must be written twice (""), '
                "but here it is followed by other text.")
    if "field larger than field limit" in text:
        return (f"line {start}: a cell is longer than {csv.field_size_limit()} characters, "
                "which usually means a quote is missing and the cell runs on.")
    return f"line {current}: the CSV cannot be read: {text}."
