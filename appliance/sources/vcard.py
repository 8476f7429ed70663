"""vCard 2.1, 3.0 and 4.0 files, read line by line as a stream of cards.

NOTE: vobject 0.9.9 was tried first and left out. It raises ParseError on the
quoted-printable soft line breaks that phones write into vCard 2.1 files, and
its card iterator stops at the first parse error, so one bad card would block
the whole file. It also keeps a quoted list such as TYPE="voice,work" as one
value, and it ran about four times slower than this reader on 25,000 cards.
"""

from __future__ import annotations

import quopri
import re
from dataclasses import dataclass, field
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

_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]+")
_ESCAPE = re.compile(r"\\([\\,;:nN])")
# Bare parameters of vCard 2.1 that name an encoding. Other bare ones are types.
_ENCODINGS = frozenset({"QUOTED-PRINTABLE", "BASE64", "B", "8BIT", "7BIT"})
# Apple writes standard types in X-ABLabel as "_$!<Mobile>!$_".
_APPLE_LABEL = re.compile(r"_\$!<(.*)>!\$_")
_APPLE_TYPES = {"homefax": "home fax", "workfax": "work fax", "otherfax": "other fax"}


@dataclass
class _LogicalLine:
    """One content line after unfolding, with the file line it starts on."""

    number: int
    data: bytes
    is_quoted_printable: bool = False
    is_base64: bool = False


@dataclass
class _Property:
    group: str
    name: str
    params: dict[str, list[str]]
    value: str


@dataclass
class _Card:
    number: int
    line: int
    properties: list[_Property] = field(default_factory=list)
    problem: str = ""


def _strip_line_end(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


class _Unfolder:
    """Join folded lines, quoted-printable soft line breaks and base64 runs.

    vCard 3.0 and 4.0 fold by inserting a line break before one space or tab, which
    unfolding removes with the break. vCard 2.1 folds as RFC 822 does, at existing
    white space, so there the space is kept. A quoted-printable value whose line
    ends in ``=`` continues on the next line whatever that line starts with, and a
    2.1 base64 value may continue on unindented lines until a blank line.
    """

    def __init__(self) -> None:
        self.version = ""

    def lines(self, binary_lines: Iterable[bytes]) -> Iterator[_LogicalLine]:
        pending: _LogicalLine | None = None
        for number, raw in enumerate(binary_lines, start=1):
            raw = check_line(number, raw)
            raw = _strip_line_end(raw)
            if pending is not None and self._continues(pending, raw):
                continue
            if pending is not None:
                yield pending
            pending = self._start(number, raw)
        if pending is not None:
            yield pending

    def _continues(self, pending: _LogicalLine, raw: bytes) -> bool:
        """Append ``raw`` to ``pending`` when it continues it; tell whether it did."""
        if (pending.is_quoted_printable and pending.data.endswith(b"=")
                and raw.strip().upper() != b"END:VCARD"):
            pending.data = pending.data[:-1] + raw
            return True
        if raw[:1] in (b" ", b"\t"):
            pending.data += raw if self.version == "2.1" else raw[1:]
            return True
        if pending.is_base64 and raw and _BASE64_LINE.fullmatch(raw):
            pending.data += raw
            return True
        return False

    def _start(self, number: int, raw: bytes) -> _LogicalLine:
        head, _, value = raw.partition(b":")
        head = head.upper()
        if head == b"VERSION":
            self.version = value.strip().decode("ascii", "replace")
        elif head == b"BEGIN":
            self.version = ""
        return _LogicalLine(
            number, raw,
            is_quoted_printable=b"QUOTED-PRINTABLE" in head,
            is_base64=b"BASE64" in head or b"ENCODING=B" in head,
        )


class VCardReader:
    """Read a vCard file card by card, one ParsedEntry per card.

    Raises ImportFileError when the file as a whole cannot be read: text outside a
    card, a card with no END:VCARD, bytes that do not decode in the card's charset.
    A card with a malformed line becomes an entry with a problem, and reading goes
    on with the next card.
    """

    def __init__(self, binary_lines: Iterable[bytes]) -> None:
        self._binary_lines = binary_lines

    def __iter__(self) -> Iterator[ParsedEntry]:
        card: _Card | None = None
        cards = 0
        nested = 0  # depth of cards embedded in a card, such as vCard 2.1 AGENT
        unfolder = _Unfolder()
        for line in unfolder.lines(self._binary_lines):
            keyword = line.data.strip().upper()
            if card is None:
                if not keyword:
                    continue
                if keyword != b"BEGIN:VCARD":
                    raise ImportFileError(
                        f'line {line.number}: expected BEGIN:VCARD but found "{_shown(line.data)}". '
                        "A card's BEGIN line is missing, or this is not a vCard file.")
                cards += 1
                card = _Card(number=cards, line=line.number)
            elif keyword == b"BEGIN:VCARD":
                nested += 1
            elif keyword == b"END:VCARD" and nested:
                nested -= 1
            elif keyword == b"END:VCARD":
                yield _entry(card)
                card = None
            elif not nested and keyword and not card.problem:
                _add_property(card, line)
        if card is not None:
            raise ImportFileError(
                f"line {card.line}: card {card.number} has no END:VCARD, so the file "
                "ends inside it. The file may be cut short.")


def _add_property(card: _Card, line: _LogicalLine) -> None:
    head, separator, value = _split_at_colon(line.data)
    if not separator:
        card.problem = f'line {line.number} has no colon: "{_shown(line.data)}"'
        return
    parts = _split_outside_quotes(head.decode("latin-1"), ";")
    group, _, name = parts[0].strip().rpartition(".")
    if not name:
        card.problem = f'line {line.number} has no property name: "{_shown(line.data)}"'
        return
    params = _parse_params(parts[1:])
    card.properties.append(_Property(
        group=group.casefold(), name=name.upper(), params=params,
        value=_decode_value(value, params, line.number)))


def _split_at_colon(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Split a content line at the first colon outside a quoted parameter value."""
    if b'"' not in data:
        return data.partition(b":")
    in_quotes = False
    for index, byte in enumerate(data):
        if byte == 0x22:  # "
            in_quotes = not in_quotes
        elif byte == 0x3A and not in_quotes:  # :
            return data[:index], b":", data[index + 1:]
    return data, b"", b""


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    if '"' not in text:
        return text.split(separator)
    parts, current, in_quotes = [], [], False
    for character in text:
        if character == '"':
            in_quotes = not in_quotes
        if character == separator and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    return parts


def _parse_params(parts: list[str]) -> dict[str, list[str]]:
    """Parse ``TYPE=cell,voice``, ``PREF=1`` and vCard 2.1's bare ``CELL`` forms."""
    params: dict[str, list[str]] = {}
    for part in parts:
        key, equals, value = part.partition("=")
        key = key.strip().upper()
        if not equals:
            key, value = ("ENCODING" if key in _ENCODINGS else "TYPE"), key
        # vCard 4.0 quotes a whole list (TYPE="voice,work"), so the quotes are dropped
        # before the split at commas.
        values = (item.strip() for item in value.replace('"', "").split(","))
        params.setdefault(key, []).extend(item for item in values if item)
    return params


def _decode_value(value: bytes, params: dict[str, list[str]], number: int) -> str:
    encoding = (params.get("ENCODING") or [""])[0].upper()
    if encoding in ("B", "BASE64"):
        return ""  # photos and keys: nothing a phone directory shows
    if encoding == "QUOTED-PRINTABLE":
        value = quopri.decodestring(value)
    charset = (params.get("CHARSET") or ["utf-8"])[0]
    try:
        return value.decode(charset)
    except LookupError:
        raise ImportFileError(
            f'line {number}: unknown character set "{charset}" in CHARSET. Export the '
            "contacts again as UTF-8.") from None
    except UnicodeDecodeError as error:
        raise ImportFileError(
            f"line {number} is not {charset} text (byte 0x{value[error.start]:02x}). "
            "Export the contacts again as UTF-8, or fix the CHARSET of this line.") from None


def _split_escaped(text: str, separator: str) -> list[str]:
    """Split at separators that no backslash escapes, keeping the escapes."""
    if "\\" not in text:
        return text.split(separator)
    parts, current, index = [], [], 0
    while index < len(text):
        character = text[index]
        if character == "\\" and index + 1 < len(text):
            current.append(text[index:index + 2])
            index += 2
            continue
        if character == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
        index += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda match: " " if match.group(1) in "nN" else match.group(1), text)


def _text(value: str) -> str:
    return clean_text(_unescape(value))


def _list_items(value: str) -> list[str]:
    items = (_text(item) for item in _split_escaped(value, ","))
    return [item for item in items if item]


def _components(value: str) -> list[str]:
    """Split a structured value such as N or ORG, joining a component's list items."""
    return [" ".join(_list_items(part)) for part in _split_escaped(value, ";")]


def _entry(card: _Card) -> ParsedEntry:
    if card.problem:
        return ParsedEntry(card.line, card.number, None, card.problem)
    return ParsedEntry(card.line, card.number, _build_contact(card.properties))


def _build_contact(properties: list[_Property]) -> Contact:
    contact = Contact(source="", source_id="")
    group_labels = {prop.group: _apple_label(prop.value)
                    for prop in properties if prop.name == "X-ABLABEL" and prop.group}
    for prop in properties:
        if prop.name == "FN" and not contact.display_name:
            contact.display_name = _text(prop.value)
        elif prop.name == "N" and not (contact.family_name or contact.given_name):
            parts = _components(prop.value) + [""] * 3
            contact.family_name, contact.given_name, contact.middle_name = parts[:3]
        elif prop.name == "NICKNAME" and not contact.nickname:
            contact.nickname = next(iter(_list_items(prop.value)), "")
        elif prop.name == "ORG" and not contact.company:
            contact.company = _components(prop.value)[0]
        elif prop.name == "TITLE" and not contact.job_title:
            contact.job_title = _text(prop.value)
        elif prop.name == "CATEGORIES":
            for label in _list_items(prop.value):
                if not is_system_group(label) and label not in contact.labels:
                    contact.labels.append(label)
        elif prop.name == "TEL":
            number = _phone_number(prop, group_labels.get(prop.group, ""))
            if number.raw:
                contact.numbers.append(number)
    return contact


def _phone_number(prop: _Property, group_label: str) -> PhoneNumber:
    types = {item.casefold() for item in prop.params.get("TYPE", [])}
    is_primary = "pref" in types or "1" in prop.params.get("PREF", [])
    type_label = group_label or _type_label(types)
    return PhoneNumber(raw=_text(prop.value), type_label=type_label, is_primary=is_primary)


def _type_label(types: set[str]) -> str:
    """Return the stored number type for vCard TYPE values such as {"cell", "voice"}."""
    if "fax" in types:
        for place in ("home", "work", "other"):
            if place in types:
                return f"{place} fax"
        return "fax"
    for names, label in ((("cell", "mobile", "iphone"), "mobile"), (("pager",), "pager"),
                         (("main", "x-main"), "main"), (("work",), "work"),
                         (("home",), "home"), (("car",), "car"), (("other",), "other")):
        if types.intersection(names):
            return label
    return ""


def _apple_label(value: str) -> str:
    text = _text(value)
    match = _APPLE_LABEL.fullmatch(text)
    if match is None:
        return normalize_type_label(text)
    name = match.group(1)
    return _APPLE_TYPES.get(name.casefold(), normalize_type_label(name))


def _shown(data: bytes, limit: int = 40) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"
