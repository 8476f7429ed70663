"""The Cisco XML renderer: escaping, limits, charsets and schema validity."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from appliance.cisco import (
    LATIN1,
    UTF8,
    DirectoryEntry,
    InputItem,
    MenuItem,
    SoftKey,
    content_type,
    negotiate_charset,
    render_directory,
    render_input,
    render_menu,
    render_text,
)
from appliance.cisco.text import fit_url
from cisco_schema import CiscoSchema
from conftest import reference_file


@pytest.fixture(scope="module")
def schema() -> CiscoSchema:
    return CiscoSchema(reference_file("CiscoIPPhone.xsd"))


def parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)


def declared_encoding(document: bytes) -> str:
    first_line = document.split(b"\n", 1)[0].decode("ascii")
    return first_line.split('encoding="', 1)[1].split('"', 1)[0]


# -- whole documents ------------------------------------------------------------


def test_render_directory_whole_document():
    document = render_directory(
        "Search: ada",
        [DirectoryEntry("Ada Lovelace", "5550100", "mobile")],
        softkeys=[
            SoftKey("Dial", "SoftKey:Dial", 1),
            SoftKey("Exit", "SoftKey:Exit", 3),
        ],
    )
    assert document == (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b"<CiscoIPPhoneDirectory>\n"
        b"  <Title>Search: ada</Title>\n"
        b"  <SoftKeyItem>\n"
        b"    <Name>Dial</Name>\n"
        b"    <Position>1</Position>\n"
        b"    <URL>SoftKey:Dial</URL>\n"
        b"  </SoftKeyItem>\n"
        b"  <SoftKeyItem>\n"
        b"    <Name>Exit</Name>\n"
        b"    <Position>3</Position>\n"
        b"    <URL>SoftKey:Exit</URL>\n"
        b"  </SoftKeyItem>\n"
        b"  <DirectoryEntry>\n"
        b"    <Name>Ada Lovelace (mobile)</Name>\n"
        b"    <Telephone>5550100</Telephone>\n"
        b"  </DirectoryEntry>\n"
        b"</CiscoIPPhoneDirectory>"
    )


def test_render_text_keeps_line_breaks():
    document = render_text("Not found", "No page here.\nOpen /directory.")
    assert parse(document).findtext("Text") == "No page here.\nOpen /directory."


def test_render_text_without_title_omits_it():
    document = render_text(None, "Hello")
    assert parse(document).find("Title") is None


def test_render_input_escapes_ampersand_in_url():
    document = render_input(
        "Search",
        "http://10.0.0.5:8080/s?kind=name&page=1",
        [InputItem("Name", "q", "A")],
    )
    assert b"<URL>http://10.0.0.5:8080/s?kind=name&amp;page=1</URL>" in document


def test_render_menu_item_url_round_trips():
    url = "http://10.0.0.5:8080/directory/browse?group=a&page=2"
    document = render_menu("Browse", [MenuItem("A", url)])
    assert parse(document).findtext("MenuItem/URL") == url


# -- escaping -------------------------------------------------------------------

ESCAPING_NAMES = [
    "Smith & Sons",
    "A <b> Tag",
    'The "Boss"',
    "O'Brien",
    "Tom &amp; Jerry",
    "Tom &lt;3 Jerry",
    'Ben & Jerry\'s <"Ice"> Cream',
]


@pytest.mark.parametrize("name", ESCAPING_NAMES)
def test_render_directory_name_round_trips(name):
    document = render_directory("D", [DirectoryEntry(name, "100")])
    assert parse(document).findtext("DirectoryEntry/Name") == name


def test_render_literal_entity_escaped_once():
    document = render_directory("D", [DirectoryEntry("Tom &amp; Jerry", "100")])
    assert b"<Name>Tom &amp;amp; Jerry</Name>" in document


@pytest.mark.parametrize(
    "character, escaped",
    [
        ("&", b"&amp;"),
        ("<", b"&lt;"),
        (">", b"&gt;"),
        ('"', b"&quot;"),
        ("'", b"&apos;"),
    ],
)
def test_render_text_escapes_each_character(character, escaped):
    document = render_text("T", f"a{character}b")
    assert b"<Text>a" + escaped + b"b</Text>" in document


# -- cleaning -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("Ada\x00 Lovelace", "Ada Lovelace"),
        ("Ada\x07Lovelace", "AdaLovelace"),
        ("Ada\nLovelace", "Ada Lovelace"),
        ("Ada\tLovelace", "Ada Lovelace"),
        ("Ada  \r\n Lovelace ", "Ada Lovelace"),
        ("Ada \U0001f600Lovelace", "Ada Lovelace"),
        ("Ada\u200bLove\u00adlace", "AdaLovelace"),
        ("Ada\x85Lovelace", "Ada Lovelace"),
        ("Zoë\U00020000", "Zoë"),
        ("\ud800Ada", "Ada"),
    ],
)
def test_render_removes_unshowable_characters(raw, shown):
    document = render_directory("D", [DirectoryEntry(raw, "100")])
    assert parse(document).findtext("DirectoryEntry/Name") == shown


def test_render_text_removes_controls_keeps_tab():
    document = render_text("T", "one\ttwo\x0bthree\x01")
    assert parse(document).findtext("Text") == "one\ttwo\nthree"


# -- limits ---------------------------------------------------------------------

LONG = "Bartholomew Featherstonehaugh-Cholmondeley of the Outer Hebrides " * 2


@pytest.mark.parametrize(
    "render, path, limit",
    [
        (lambda: render_menu(LONG, []), "Title", 32),
        (lambda: render_menu("T", [], prompt=LONG), "Prompt", 32),
        (
            lambda: render_menu("T", [MenuItem(LONG, "http://h:1/")]),
            "MenuItem/Name",
            64,
        ),
        (
            lambda: render_directory("T", [DirectoryEntry(LONG, "1")]),
            "DirectoryEntry/Name",
            32,
        ),
        (
            lambda: render_menu("T", [], softkeys=[SoftKey(LONG, "SoftKey:Exit", 1)]),
            "SoftKeyItem/Name",
            32,
        ),
        (
            lambda: render_input("T", "http://h:1/", [InputItem(LONG, "q", "A")]),
            "InputItem/DisplayName",
            32,
        ),
        (
            lambda: render_input("T", "http://h:1/", [InputItem("N", "q", "A", LONG)]),
            "InputItem/DefaultValue",
            32,
        ),
        (lambda: render_text("T", LONG * 40), "Text", 4000),
    ],
)
def test_render_cuts_text_to_limit(render, path, limit):
    shown = parse(render()).findtext(path)
    assert len(shown) == limit
    assert shown.endswith("\u2026")


def test_render_latin1_cut_uses_three_dots():
    document = render_menu(LONG, [], charset=LATIN1)
    title = parse(document).findtext("Title")
    assert len(title) == 32
    assert title.endswith("...")


def test_render_directory_keeps_label_of_long_name():
    document = render_directory("T", [DirectoryEntry(LONG, "1", "mobile")])
    name = parse(document).findtext("DirectoryEntry/Name")
    assert len(name) == 32
    assert name.endswith("\u2026 (mobile)")


def test_render_directory_telephone_only_dialable():
    document = render_directory("T", [DirectoryEntry("A", "+1 (555) 010-2000, x42")])
    assert parse(document).findtext("DirectoryEntry/Telephone") == "15550102000,42"


def test_render_directory_telephone_cut_to_limit():
    document = render_directory("T", [DirectoryEntry("A", "1" * 40)])
    assert parse(document).findtext("DirectoryEntry/Telephone") == "1" * 32


def test_fit_url_long_url_cut_to_limit():
    url = "http://h:1/s?q=" + "a" * 300
    assert len(fit_url(url)) == 256


def test_fit_url_never_splits_escape():
    url = "http://h:1/s?q=" + "%C3%A9" * 80
    assert fit_url(url).endswith("%A9")


def test_render_url_non_ascii_percent_encoded():
    document = render_menu("T", [MenuItem("Ren\u00e9e", "http://h:1/s?q=Ren\u00e9e M")])
    assert parse(document).findtext("MenuItem/URL") == "http://h:1/s?q=Ren%C3%A9e%20M"


@pytest.mark.parametrize(
    "render, message",
    [
        (
            lambda: render_menu(
                "T", [MenuItem(str(i), "http://h:1/") for i in range(101)]
            ),
            "101 MenuItem",
        ),
        (
            lambda: render_directory(
                "T", [DirectoryEntry(str(i), "1") for i in range(33)]
            ),
            "33 DirectoryEntry",
        ),
        (
            lambda: render_menu(
                "T",
                [],
                softkeys=[SoftKey("K", "SoftKey:Exit", i) for i in range(1, 10)],
            ),
            "9 SoftKeyItem",
        ),
        (
            lambda: render_input(
                "T", "http://h:1/", [InputItem("N", f"q{i}", "A") for i in range(6)]
            ),
            "6 InputItem",
        ),
        (
            lambda: render_menu("T", [], softkeys=[SoftKey("K", "SoftKey:Exit", 9)]),
            "position 9",
        ),
        (
            lambda: render_menu(
                "T",
                [],
                softkeys=[
                    SoftKey("K", "SoftKey:Exit", 2),
                    SoftKey("L", "SoftKey:Exit", 2),
                ],
            ),
            "repeat",
        ),
        (
            lambda: render_input("T", "http://h:1/", [InputItem("N", "q", "X")]),
            "input flags",
        ),
        (
            lambda: render_input("T", "http://h:1/", [InputItem("N", "", "A")]),
            "parameter name",
        ),
        (lambda: render_input("T", "", []), "needs a URL"),
        (lambda: render_text("T", "x", charset="koi8-r"), "charset"),
    ],
)
def test_render_rejects_over_limit_counts(render, message):
    with pytest.raises(ValueError, match=message):
        render()


def test_render_accepts_counts_at_limit(schema):
    documents = [
        render_menu("T", [MenuItem(str(i), "http://h:1/") for i in range(100)]),
        render_directory(
            "T",
            [DirectoryEntry(str(i), "1") for i in range(32)],
            softkeys=[SoftKey(str(i), "SoftKey:Exit", i) for i in range(1, 9)],
        ),
        render_input(
            "T", "http://h:1/", [InputItem("N", f"q{i}", "A") for i in range(5)]
        ),
    ]
    for document in documents:
        assert schema.validate(document, strict_order=True) == []


# -- charsets -------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept_charset, model, expected",
    [
        ("iso-8859-1, utf-8;q=0.8", None, LATIN1),
        ("ISO-8859-1,utf-8;q=0.8", "CP-7960G", LATIN1),
        ("utf-8", None, UTF8),
        ("UTF-8", "CP-7970G", UTF8),
        ("utf-8, iso-8859-1;q=0.5", None, UTF8),
        ("utf-8;q=0.9, iso-8859-1;q=0.5", None, UTF8),
        ("utf-8;q=0.8", None, LATIN1),
        ("iso-8859-1", None, LATIN1),
        ("*", None, UTF8),
        ("shift_jis", None, LATIN1),
        ("utf-8;q=0", None, LATIN1),
        ("utf-8;q=abc", None, LATIN1),
        (";;, ,", None, UTF8),
        (None, None, UTF8),
        ("", "CP-7940G", LATIN1),
        (None, "CP-7960", LATIN1),
        (None, "CP-7905G", LATIN1),
        (None, "CP-8845", UTF8),
    ],
)
def test_negotiate_charset_table(accept_charset, model, expected):
    assert negotiate_charset(accept_charset, model) == expected


def test_render_latin1_bytes_and_declaration():
    document = render_directory(
        "D", [DirectoryEntry("Ren\u00e9e M\u00fcller", "100")], charset=LATIN1
    )
    assert declared_encoding(document) == "iso-8859-1"
    assert b"<Name>Ren\xe9e M\xfcller</Name>" in document


def test_content_type_names_charset():
    assert content_type(LATIN1) == "text/xml; charset=iso-8859-1"


@pytest.mark.parametrize(
    "name, latin1, ascii_only",
    [
        ("Micha\u0142 Nowak", "Michal Nowak", "Michal Nowak"),
        ("Stra\u00dfe", "Stra\u00dfe", "Strasse"),
        ("J\u00e4ger", "J\u00e4ger", "Jager"),
        ("O\u2019Neil", "O'Neil", "O'Neil"),
        ("\u201cAce\u201d Cab", '"Ace" Cab', '"Ace" Cab'),
        ("\u0152uvre", "Oeuvre", "Oeuvre"),
        ("Dvo\u0159\u00e1k", "Dvor\u00e1k", "Dvorak"),
        ("\u0418\u0432\u0430\u043d", "Ivan", "Ivan"),
        ("A\u2013B", "A-B", "A-B"),
    ],
)
def test_render_latin1_transliterates(name, latin1, ascii_only):
    plain = render_directory("D", [DirectoryEntry(name, "1")], charset=LATIN1)
    ascii_document = render_directory(
        "D", [DirectoryEntry(name, "1")], charset=LATIN1, ascii_only=True
    )
    assert parse(plain).findtext("DirectoryEntry/Name") == latin1
    assert parse(ascii_document).findtext("DirectoryEntry/Name") == ascii_only


def test_render_utf8_keeps_letters():
    document = render_directory(
        "D", [DirectoryEntry("Micha\u0142 \u0418\u0432\u0430\u043d", "1")]
    )
    assert "Micha\u0142 \u0418\u0432\u0430\u043d".encode() in document


# -- schema ---------------------------------------------------------------------


def test_every_renderer_output_is_valid(schema):
    softkeys = [
        SoftKey("Dial", "SoftKey:Dial", 1),
        SoftKey("Next", "http://h:1/n?p=2", 2),
    ]
    documents = [
        render_menu(
            LONG,
            [MenuItem(LONG, "http://h:1/a?b=1&c=2")],
            prompt=LONG,
            softkeys=softkeys,
        ),
        render_directory(
            LONG, [DirectoryEntry(LONG, "+1 555", LONG)], softkeys=softkeys
        ),
        render_input(LONG, "http://h:1/s", [InputItem(LONG, "q", "T", LONG)]),
        render_text(LONG, LONG * 100, softkeys=softkeys),
        render_text(None, ""),
    ]
    for document in documents:
        assert schema.validate(document, strict_order=True) == []


@pytest.mark.parametrize(
    "document, problem",
    [
        (
            b"<CiscoIPPhoneMenu><Title>" + b"x" * 33 + b"</Title></CiscoIPPhoneMenu>",
            "at most 32",
        ),
        (b"<CiscoIPPhoneMenu><Bogus/></CiscoIPPhoneMenu>", "not allowed"),
        (b"<CiscoIPPhoneInput><Title>T</Title></CiscoIPPhoneInput>", "URL occurs 0"),
        (
            b"<CiscoIPPhoneMenu><MenuItem><Name>A</Name></MenuItem><Title>T</Title>"
            b"</CiscoIPPhoneMenu>",
            "schema order",
        ),
        (
            b"<CiscoIPPhoneMenu><SoftKeyItem><Position>9</Position></SoftKeyItem>"
            b"</CiscoIPPhoneMenu>",
            "above 8",
        ),
        (
            b"<CiscoIPPhoneInput><URL>u</URL><InputItem>"
            b"<QueryStringParam>q</QueryStringParam>"
            b"<InputFlags>Z</InputFlags></InputItem></CiscoIPPhoneInput>",
            "not one of",
        ),
        (b"<CiscoIPPhoneMenu x='1'/>", "attribute x"),
        (b"<Unknown/>", "not declared"),
        (b"<CiscoIPPhoneMenu>", "not well-formed"),
    ],
)
def test_schema_validator_finds_problem(schema, document, problem):
    problems = schema.validate(document, strict_order=True)
    assert any(problem in text for text in problems)
