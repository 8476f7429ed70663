"""Render CiscoIPPhone XML objects from plain values to bytes.

Every function here is pure: it takes titles, entries and links and returns the
encoded document, with each text cleaned, spelt in the response charset and cut
to its schema limit. Counts beyond the schema limits (100 menu items, 32
directory entries, 8 softkeys, 5 input items) raise ValueError. Dropping entries
silently would hide contacts, so callers page instead.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable, Sequence
from urllib.parse import quote

from appliance.cisco.text import (
    CHARSETS,
    ENTRY_NAME_MAX,
    INPUT_DEFAULT_MAX,
    INPUT_DISPLAY_NAME_MAX,
    INPUT_PARAM_MAX,
    MENU_ITEM_NAME_MAX,
    PROMPT_MAX,
    SOFTKEY_NAME_MAX,
    TEXT_MAX,
    TITLE_MAX,
    UTF8,
    clean_text,
    dialable,
    fit,
    fit_label,
    fit_url,
    transliterate,
)

MAX_MENU_ITEMS = 100
MAX_DIRECTORY_ENTRIES = 32
MAX_SOFTKEYS = 8
MAX_INPUT_ITEMS = 5

# Rendered DirectoryEntry elements kept for reuse. Every phone that opens a page
# requests the same entries, and turning 32 entries into XML was most of a
# directory page's time. 8,192 entries are 256 full pages and take about 4 MiB
# (tracemalloc, names of about 20 characters).
ENTRY_CACHE_SIZE = 8192

INPUT_FLAGS = frozenset(
    {
        "A",
        "T",
        "N",
        "E",
        "U",
        "L",
        "AP",
        "TP",
        "NP",
        "EP",
        "UP",
        "LP",
        "PA",
        "PT",
        "PN",
        "PE",
        "PU",
        "PL",
    }
)

# Characters left as they are when a URL is made safe; everything else (spaces,
# non-ASCII letters, quotes) is percent-encoded.
_URL_SAFE = "/:?&=%#+,;@!$()*~[]-._"


@dataclass(frozen=True)
class SoftKey:
    """A softkey: ``url`` is an http URL or an internal URI such as SoftKey:Exit."""

    name: str
    url: str
    position: int


@dataclass(frozen=True)
class MenuItem:
    """One line of a CiscoIPPhoneMenu."""

    name: str
    url: str


@dataclass(frozen=True)
class DirectoryEntry:
    """One dialable line of a CiscoIPPhoneDirectory.

    ``label`` (such as ``mobile``) is shown after the name in brackets and is kept
    when a long name has to be cut.
    """

    name: str
    telephone: str
    label: str = ""


@dataclass(frozen=True)
class InputItem:
    """One field of a CiscoIPPhoneInput form; ``flags`` is an XSD InputFlags value."""

    display_name: str
    param: str
    flags: str
    default: str = ""


class _Writer:
    """Build one object's element tree with the text rules of one charset."""

    def __init__(self, root: str, charset: str, ascii_only: bool) -> None:
        if charset not in CHARSETS:
            raise ValueError(f"charset {charset!r} is not one of {', '.join(CHARSETS)}")
        self.root = ET.Element(root)
        self.charset = charset
        self.ascii_only = ascii_only

    def spell(self, value: str, multiline: bool = False) -> str:
        """Return ``value`` cleaned and spelt in this writer's charset, not yet cut."""
        return transliterate(
            clean_text(value, multiline), self.charset, self.ascii_only
        )

    def text(self, value: str, limit: int, multiline: bool = False) -> str:
        return fit(self.spell(value, multiline), limit, self.charset)

    def add(self, parent: ET.Element, tag: str, value: str) -> ET.Element:
        element = ET.SubElement(parent, tag)
        element.text = value
        return element

    def header(
        self, title: str | None, prompt: str | None, softkeys: Iterable[SoftKey]
    ) -> None:
        """Add Title, Prompt and SoftKeyItems, in the order the XSD sequence gives."""
        if title:
            self.add(self.root, "Title", self.text(title, TITLE_MAX))
        if prompt:
            self.add(self.root, "Prompt", self.text(prompt, PROMPT_MAX))
        softkeys = list(softkeys)
        _check_count("SoftKeyItem", len(softkeys), MAX_SOFTKEYS)
        positions = [softkey.position for softkey in softkeys]
        if len(set(positions)) != len(positions):
            raise ValueError(f"softkey positions {positions} repeat a position")
        for softkey in softkeys:
            if not 1 <= softkey.position <= MAX_SOFTKEYS:
                raise ValueError(
                    f"softkey position {softkey.position} is not from 1 to 8"
                )
            item = ET.SubElement(self.root, "SoftKeyItem")
            self.add(item, "Name", self.text(softkey.name, SOFTKEY_NAME_MAX))
            self.add(item, "Position", str(softkey.position))
            self.add(item, "URL", url_text(softkey.url))

    def to_bytes(self) -> bytes:
        return serialize(self.root, self.charset)


def _begin(
    root: str,
    title: str | None,
    prompt: str | None,
    softkeys: Iterable[SoftKey],
    charset: str,
    ascii_only: bool,
) -> _Writer:
    """Start an object with its Title, Prompt and SoftKeyItems."""
    writer = _Writer(root, charset, ascii_only)
    writer.header(title, prompt, softkeys)
    return writer


def url_text(url: str) -> str:
    """Return ``url`` percent-encoded where needed and within the URL limit."""
    return fit_url(quote(clean_text(url), safe=_URL_SAFE))


def _check_count(tag: str, count: int, maximum: int) -> None:
    if count > maximum:
        raise ValueError(
            f"{count} {tag} elements given; a Cisco phone accepts at most "
            f"{maximum} in one object, so page the rest"
        )


def serialize(root: ET.Element, charset: str, children: Sequence[str] = ()) -> bytes:
    """Encode an element tree with an XML declaration that names ``charset``.

    Text escapes &, < and > as ElementTree does. Cisco's developer notes also
    list " and ' as characters to escape, because the phones' parser is not a
    full XML parser, so quotes are written as &quot; and &apos;. The output is
    what ``ET.indent`` and ``ET.tostring`` give: two spaces per level between
    elements, whitespace XML ignores, which keeps responses readable with curl.
    This writer knows the one shape our objects have (no attributes, text only
    in leaf elements), so it takes about a third of ElementTree's time for a
    page of 32 entries. ``children`` are more children of the root, already
    written as XML text, that follow the root's own.
    """
    parts = [f'<?xml version="1.0" encoding="{charset}"?>\n']
    if not children:
        _write_element(parts, root, "")
        return "".join(parts).encode(charset)
    parts.append(f"<{root.tag}>")
    for child in root:
        parts.append("\n  ")
        _write_element(parts, child, "  ")
    for child_text in children:
        parts.append("\n  " + child_text)
    parts.append(f"\n</{root.tag}>")
    return "".join(parts).encode(charset)


def _write_element(parts: list[str], element: ET.Element, indent: str) -> None:
    tag = element.tag
    if not len(element):
        parts.append(f"<{tag}>{_escape_text(element.text or '')}</{tag}>")
        return
    inner = indent + "  "
    parts.append(f"<{tag}>")
    for child in element:
        parts.append("\n" + inner)
        _write_element(parts, child, inner)
    parts.append(f"\n{indent}</{tag}>")


def _escape_text(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def render_menu(
    title: str | None,
    items: Iterable[MenuItem],
    *,
    prompt: str | None = None,
    softkeys: Iterable[SoftKey] = (),
    charset: str = UTF8,
    ascii_only: bool = False,
) -> bytes:
    """Render a CiscoIPPhoneMenu; without softkeys the phone shows Select and Exit."""
    writer = _begin("CiscoIPPhoneMenu", title, prompt, softkeys, charset, ascii_only)
    items = list(items)
    _check_count("MenuItem", len(items), MAX_MENU_ITEMS)
    for item in items:
        element = ET.SubElement(writer.root, "MenuItem")
        writer.add(element, "Name", writer.text(item.name, MENU_ITEM_NAME_MAX))
        writer.add(element, "URL", url_text(item.url))
    return writer.to_bytes()


def render_directory(
    title: str | None,
    entries: Iterable[DirectoryEntry],
    *,
    prompt: str | None = None,
    softkeys: Iterable[SoftKey] = (),
    charset: str = UTF8,
    ascii_only: bool = False,
) -> bytes:
    """Render a CiscoIPPhoneDirectory of at most 32 entries.

    Custom softkeys replace the phone's defaults, so a caller that adds Next or
    Prev must also add SoftKey:Dial, SoftKey:EditDial and SoftKey:Exit.
    """
    writer = _begin(
        "CiscoIPPhoneDirectory", title, prompt, softkeys, charset, ascii_only
    )
    entries = list(entries)
    _check_count("DirectoryEntry", len(entries), MAX_DIRECTORY_ENTRIES)
    elements = [
        _entry_element(entry.name, entry.label, entry.telephone, charset, ascii_only)
        for entry in entries
    ]
    return serialize(writer.root, charset, elements)


@functools.lru_cache(maxsize=ENTRY_CACHE_SIZE)
def _entry_element(
    name: str, label: str, telephone: str, charset: str, ascii_only: bool
) -> str:
    """Return one DirectoryEntry element as XML text, indented as a root child."""
    shown = fit_label(
        transliterate(clean_text(name), charset, ascii_only),
        transliterate(clean_text(label), charset, ascii_only),
        ENTRY_NAME_MAX,
        charset,
    )
    return (
        f"<DirectoryEntry>\n    <Name>{_escape_text(shown)}</Name>\n"
        f"    <Telephone>{_escape_text(dialable(telephone))}</Telephone>\n"
        "  </DirectoryEntry>"
    )


def render_input(
    title: str | None,
    url: str,
    items: Iterable[InputItem],
    *,
    prompt: str | None = None,
    softkeys: Iterable[SoftKey] = (),
    charset: str = UTF8,
    ascii_only: bool = False,
) -> bytes:
    """Render a CiscoIPPhoneInput form; the phone submits it by GET to ``url``.

    The phone appends ``param=value`` for each item to ``url`` as a query string.
    """
    if not url:
        raise ValueError("a CiscoIPPhoneInput needs a URL to submit to")
    writer = _begin("CiscoIPPhoneInput", title, prompt, softkeys, charset, ascii_only)
    items = list(items)
    _check_count("InputItem", len(items), MAX_INPUT_ITEMS)
    writer.add(writer.root, "URL", url_text(url))
    for item in items:
        if not 1 <= len(item.param) <= INPUT_PARAM_MAX:
            raise ValueError(
                f"input parameter name {item.param!r} must have 1 to "
                f"{INPUT_PARAM_MAX} characters"
            )
        if item.flags not in INPUT_FLAGS:
            raise ValueError(
                f"input flags {item.flags!r} are not one of "
                f"{', '.join(sorted(INPUT_FLAGS))}"
            )
        element = ET.SubElement(writer.root, "InputItem")
        if item.display_name:
            writer.add(
                element,
                "DisplayName",
                writer.text(item.display_name, INPUT_DISPLAY_NAME_MAX),
            )
        writer.add(element, "QueryStringParam", item.param)
        writer.add(element, "InputFlags", item.flags)
        if item.default:
            writer.add(
                element, "DefaultValue", writer.text(item.default, INPUT_DEFAULT_MAX)
            )
    return writer.to_bytes()


def render_text(
    title: str | None,
    text: str,
    *,
    prompt: str | None = None,
    softkeys: Iterable[SoftKey] = (),
    charset: str = UTF8,
    ascii_only: bool = False,
) -> bytes:
    """Render a CiscoIPPhoneText message, such as an error page for a phone.

    The text keeps its line breaks and is cut to 4000 characters; the phone wraps
    and pages it itself.
    """
    writer = _begin("CiscoIPPhoneText", title, prompt, softkeys, charset, ascii_only)
    body = writer.text(text, TEXT_MAX, multiline=True)
    if body:
        writer.add(writer.root, "Text", body)
    return writer.to_bytes()
