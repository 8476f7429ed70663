"""The Cisco XML writer against ElementTree's own indent and tostring."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from appliance.cisco.objects import serialize


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
