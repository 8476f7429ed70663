"""The Cisco XML writer against ElementTree's indent and tostring and against
rendering every entry as elements."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from appliance.cisco.objects import (
    ENTRY_CACHE_SIZE,
    DirectoryEntry,
    SoftKey,
    _begin,
    _entry_element,
    render_directory,
    serialize,
)
from appliance.cisco.text import ENTRY_NAME_MAX, dialable, fit_label


def elementtree_bytes(root: ET.Element, charset: str) -> bytes:
    """Serialize the way the renderer did before it had its own writer."""
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    body = body.replace('"', "&quot;").replace("'", "&apos;")
    return (f'<?xml version="1.0" encoding="{charset}"?>\n' + body).encode(charset)


def build(texts: list[str | None]) -> ET.Element:
    """Build a directory with one entry per text, nested two levels deep."""
    root = ET.Element("CiscoIPPhoneDirectory")
    ET.SubElement(root, "Title").text = "Browse: S"
    for text in texts:
        entry = ET.SubElement(root, "DirectoryEntry")
        ET.SubElement(entry, "Name").text = text
        ET.SubElement(entry, "Telephone").text = "912025550123"
    return root


@pytest.mark.parametrize("texts", [
    ["Ada Lovelace"],
    ["O'Brien & Sons", 'Say "hi"', "a < b > c"],
    ["Søren Kierkegaard (Mobile)", "Renée"],
    [None, ""],
    ["  spaced  ", "tab\there"],
    [],
])
@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1"])
def test_serialize_matches_elementtree(texts, charset):
    assert serialize(build(texts), charset) == elementtree_bytes(build(texts), charset)


def test_serialize_escapes_quotes_in_text():
    root = ET.Element("CiscoIPPhoneText")
    ET.SubElement(root, "Text").text = "O'Brien said \"5 > 3 & 2 < 4\""
    body = serialize(root, "utf-8").decode("utf-8")
    assert "<Text>O&apos;Brien said &quot;5 &gt; 3 &amp; 2 &lt; 4&quot;</Text>" in body


def test_serialize_empty_leaf_has_end_tag():
    root = ET.Element("CiscoIPPhoneMenu")
    ET.SubElement(root, "Title")
    assert serialize(root, "utf-8").endswith(b"<Title></Title>\n</CiscoIPPhoneMenu>")


def test_serialize_unencodable_text_raises():
    root = ET.Element("CiscoIPPhoneText")
    ET.SubElement(root, "Text").text = "\u0142"
    with pytest.raises(UnicodeEncodeError):
        serialize(root, "iso-8859-1")


def directory_by_elements(title, entries, prompt, softkeys, charset, ascii_only):
    """Render a directory with one element per value, as the renderer did before it
    kept rendered entries."""
    writer = _begin("CiscoIPPhoneDirectory", title, prompt, softkeys, charset, ascii_only)
    for entry in entries:
        element = ET.SubElement(writer.root, "DirectoryEntry")
        name = fit_label(writer.spell(entry.name), writer.spell(entry.label),
                         ENTRY_NAME_MAX, charset)
        writer.add(element, "Name", name)
        writer.add(element, "Telephone", dialable(entry.telephone))
    return serialize(writer.root, charset)


ENTRIES = [
    DirectoryEntry("Ada Lovelace", "+442079460168", "Mobile"),
    DirectoryEntry("Łukasz Nowak-Kowalski & Sons Ltd of Kraków", "9,,1234", "Work"),
    DirectoryEntry("O'Brien \"Bob\" <Eng>", "*67#555", ""),
    DirectoryEntry("", "5550100", "Home"),
    DirectoryEntry("Søren\u200b Kierkegaard", "+45 33 12 34 56", "Sommerhus i Nordsjælland"),
]


@pytest.mark.parametrize("charset, ascii_only", [("utf-8", False), ("iso-8859-1", False),
                                                 ("iso-8859-1", True)])
@pytest.mark.parametrize("count", [0, 1, len(ENTRIES)])
def test_render_directory_matches_element_rendering(charset, ascii_only, count):
    softkeys = [SoftKey("Dial", "SoftKey:Dial", 1),
                SoftKey("Next", "http://127.0.0.1:8080/directory/browse?group=s&page=2", 4)]
    arguments = ("Browse: S", ENTRIES[:count], "5 found", softkeys, charset, ascii_only)
    rendered = render_directory(arguments[0], arguments[1], prompt=arguments[2],
                                softkeys=arguments[3], charset=charset,
                                ascii_only=ascii_only)
    assert rendered == directory_by_elements(*arguments)


def test_render_directory_entry_cache_is_bounded():
    assert _entry_element.cache_info().maxsize == ENTRY_CACHE_SIZE
