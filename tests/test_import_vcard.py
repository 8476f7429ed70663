"""vCard import: versions 2.1, 3.0 and 4.0 as phones and mail programs write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import ImportFileError
from appliance.model import Contact, PhoneNumber
from appliance.sources.files import ImportResult, read_contact_file

DATA = Path(__file__).parent / "data"


def card(*lines: str, version: str = "3.0") -> str:
    return "\r\n".join(["BEGIN:VCARD", f"VERSION:{version}", *lines, "END:VCARD"]) + "\r\n"


def read_bytes(tmp_path: Path, config, content: bytes) -> ImportResult:
    path = tmp_path / "contacts.vcf"
    path.write_bytes(content)
    return read_contact_file(path, config)


def read_text(tmp_path: Path, config, text: str) -> ImportResult:
    return read_bytes(tmp_path, config, text.encode("utf-8"))


def only_contact(result: ImportResult) -> Contact:
    assert len(result.contacts) == 1, result.skipped
    return result.contacts[0]


def number_tuples(contact: Contact) -> list[tuple]:
    return [(n.raw, n.type_label, n.is_primary, n.e164, n.extension) for n in contact.numbers]


@pytest.fixture
def config(make_config):
    return make_config()


# -- files as phones write them ---------------------------------------------------


@pytest.fixture
def android(config) -> ImportResult:
    return read_contact_file(DATA / "android-2.1.vcf", config)


@pytest.fixture
def iphone(config) -> ImportResult:
    return read_contact_file(DATA / "iphone-3.0.vcf", config)


@pytest.fixture
def version4(config) -> ImportResult:
    return read_contact_file(DATA / "vcard-4.0.vcf", config)


def test_vcard_format_detected(android):
    assert android.format_name == "vCard"


def test_vcard21_quoted_printable_utf8_name(android):
    renee = android.contacts[0]
    assert (renee.given_name, renee.family_name) == ("Renée", "Müller")


def test_vcard21_soft_line_break_joined(android):
    assert android.contacts[0].display_name == "Renée Müller-Lüdenscheid"


def test_vcard21_bare_types_and_pref(android):
    assert number_tuples(android.contacts[0]) == [
        ("+1 202 555 0121", "mobile", True, "+12025550121", None),
        ("+1 202 555 0122", "work", False, "+12025550122", None),
        ("+1 202 555 0123", "work fax", False, "+12025550123", None),
    ]


def test_vcard21_base64_photo_skipped(android):
    assert android.read == 2


def test_vcard21_latin1_quoted_printable(android):
    francois = android.contacts[1]
    assert (francois.given_name, francois.family_name) == ("François", "Lefèvre")


def test_vcard21_latin1_raw_bytes(android):
    assert android.contacts[1].company == "Café Lumière"


def test_vcard21_local_number_kept_raw(android):
    assert number_tuples(android.contacts[1]) == [("555-0124", "home", False, None, None)]


def test_vcard30_names_from_n_and_fn(iphone):
    jane = iphone.contacts[0]
    assert (jane.display_name, jane.given_name, jane.middle_name, jane.family_name) == (
        "Dr. Jane Q. Doe", "Jane", "Q.", "Doe")


def test_vcard30_escaped_comma_in_org(iphone):
    assert iphone.contacts[0].company == "Smith, Jones & Partners"


def test_vcard30_escaped_semicolon_in_title(iphone):
    assert iphone.contacts[0].job_title == "Head of Sales; EMEA"


def test_vcard30_grouped_labels(iphone):
    assert number_tuples(iphone.contacts[0]) == [
        ("+1 312 555 0131", "Boat", True, "+13125550131", None),
        ("+1 312 555 0132", "mobile", False, "+13125550132", None),
        ("+1 312 555 0133", "home fax", False, "+13125550133", None),
    ]


def test_vcard30_categories_become_labels(iphone):
    assert iphone.contacts[0].labels == ["Staff", "Board"]


def test_vcard30_lowercase_card_without_fn(iphone):
    sparky = iphone.contacts[1]
    assert (sparky.nickname, sparky.display_name) == ("Sparky", "")


def test_vcard30_origin_names_card_and_line(iphone):
    assert iphone.contacts[1].origin == "iphone-3.0.vcf card 2 (line 17)"


def test_vcard40_tel_uri_with_extension(version4):
    assert number_tuples(version4.contacts[0])[0] == (
        "tel:+1-415-555-0141;ext=42", "work", True, "+14155550141", "42")


def test_vcard40_cell_uri(version4):
    assert number_tuples(version4.contacts[0])[1] == (
        "tel:+1-415-555-0142", "mobile", False, "+14155550142", None)


def test_vcard40_organisation_card(version4):
    zenith = version4.contacts[1]
    assert (zenith.company, zenith.display_name) == ("Zenith Elevators", "")


# -- hard cards -------------------------------------------------------------------

TEL = "TEL;TYPE=CELL:+1 202 555 0150"

HARD_CARDS = [
    # (card lines, vCard version, Contact field, value expected in the store)
    (["FN:Harbour & Finch"], "3.0", "display_name", "Harbour & Finch"),
    (["FN:<Ada>"], "3.0", "display_name", "<Ada>"),
    (['FN:The "Boss" Jones'], "3.0", "display_name", 'The "Boss" Jones'),
    (["FN:Tom O'Brien"], "3.0", "display_name", "Tom O'Brien"),
    (["FN:Tom &amp; Jerry"], "3.0", "display_name", "Tom &amp; Jerry"),
    (["FN:Pizza 🍕 Corner"], "4.0", "display_name", "Pizza 🍕 Corner"),
    (["FN:דנה לוי"], "4.0", "display_name", "דנה לוי"),
    (["ORG:شركة النور"], "4.0", "company", "شركة النور"),
    (["FN:Smith\\, Jr."], "3.0", "display_name", "Smith, Jr."),
    (["N:Doe\\;Smith;Jane;;;"], "3.0", "family_name", "Doe;Smith"),
    (["N:Doe;John;Philip,Paul;;"], "3.0", "middle_name", "Philip Paul"),
    (["FN:Ada\\nLovelace"], "3.0", "display_name", "Ada Lovelace"),
    (["FN:C:\\temp"], "2.1", "display_name", "C:\\temp"),
    (["FN:Ada Love", " lace"], "3.0", "display_name", "Ada Lovelace"),
    (["FN:Ada Love", "\tlace"], "4.0", "display_name", "Ada Lovelace"),
    (["FN:Ada", " Lovelace"], "2.1", "display_name", "Ada Lovelace"),
    (["FN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Ren=C3=A9e =", "M=C3=BCller"], "2.1",
     "display_name", "Renée Müller"),
    (["FN;QUOTED-PRINTABLE;CHARSET=UTF-8:Ren=C3=A9e"], "2.1", "display_name", "Renée"),
    (["FN;CHARSET=windows-1252;ENCODING=QUOTED-PRINTABLE:Caf=E9 =80"], "2.1", "display_name",
     "Café €"),
    (["FN;ENCODING=QUOTED-PRINTABLE:Zo=C3=AB"], "2.1", "display_name", "Zoë"),
    (["fn:ada lovelace"], "3.0", "display_name", "ada lovelace"),
    (["ORG:Acme\\, Inc.;Research;Lab 2"], "3.0", "company", "Acme, Inc."),
    (["ORG:Acme"], "3.0", "display_name", ""),
    ([], "3.0", "numbers", [PhoneNumber("+1 202 555 0150", "mobile", False, "+12025550150")]),
    (["NICKNAME:Sparky,Sparks"], "3.0", "nickname", "Sparky"),
    (["TITLE:Head of Sales\\, EMEA"], "3.0", "job_title", "Head of Sales, EMEA"),
    (["FN:A", "CATEGORIES:Sales\\, EMEA,Staff"], "3.0", "labels", ["Sales, EMEA", "Staff"]),
    (["FN:A", "CATEGORIES:Staff", "CATEGORIES:Board,Staff"], "3.0", "labels", ["Staff", "Board"]),
    (["FN:A", "CATEGORIES:myContacts,starred"], "3.0", "labels", []),
    (["FN:First", "FN:Second"], "4.0", "display_name", "First"),
    (["FN:A", "NOTE:folded", "  note", "PHOTO;ENCODING=b;TYPE=JPEG:AAAA", " BBBB"], "3.0",
     "display_name", "A"),
    (["X-CUSTOM;X-PARAM=\"a:b\":value", "FN:Quoted colon"], "4.0", "display_name",
     "Quoted colon"),
]


@pytest.mark.parametrize(("lines", "version", "field", "expected"), HARD_CARDS)
def test_vcard_hard_card_read(tmp_path, config, lines, version, field, expected):
    content = card(*lines, TEL, version=version).encode("utf-8")
    assert getattr(only_contact(read_bytes(tmp_path, config, content)), field) == expected


def test_vcard_charset_latin1_raw_bytes(tmp_path, config):
    content = card("FN;CHARSET=ISO-8859-1:Ren\xe9e", TEL, version="2.1").encode("latin-1")
    assert only_contact(read_bytes(tmp_path, config, content)).display_name == "Renée"


def test_vcard_quoted_printable_before_end(tmp_path, config):
    # A buggy writer ends the last value with "=": END:VCARD must still close the card.
    text = card(TEL, "FN;ENCODING=QUOTED-PRINTABLE:Ada=", version="2.1")
    assert only_contact(read_text(tmp_path, config, text)).display_name == "Ada"


NUMBER_LINES = [
    # (TEL lines, [(raw, type_label, is_primary, e164, extension)])
    (["TEL;TYPE=CELL:+1 202 555 0160"], [("+1 202 555 0160", "mobile", False, "+12025550160", None)]),
    (["TEL;CELL;PREF:+1 202 555 0161"], [("+1 202 555 0161", "mobile", True, "+12025550161", None)]),
    (["TEL;TYPE=work,voice;TYPE=pref:(202) 555-0162"],
     [("(202) 555-0162", "work", True, "+12025550162", None)]),
    (['TEL;VALUE=uri;PREF=1;TYPE="voice,home":tel:+1-202-555-0163;ext=7'],
     [("tel:+1-202-555-0163;ext=7", "home", True, "+12025550163", "7")]),
    (["TEL;VALUE=uri;PREF=2;TYPE=work:tel:+1-202-555-0164"],
     [("tel:+1-202-555-0164", "work", False, "+12025550164", None)]),
    (["TEL;TYPE=fax;TYPE=work:202 555 0165"], [("202 555 0165", "work fax", False, "+12025550165", None)]),
    (["TEL;TYPE=FAX:202 555 0166"], [("202 555 0166", "fax", False, "+12025550166", None)]),
    (["TEL;TYPE=pager:202 555 0167"], [("202 555 0167", "pager", False, "+12025550167", None)]),
    (["TEL;TYPE=IPHONE:202 555 0168"], [("202 555 0168", "mobile", False, "+12025550168", None)]),
    (["TEL;TYPE=x-custom:202 555 0169"], [("202 555 0169", "", False, "+12025550169", None)]),
    (["TEL:4021"], [("4021", "", False, None, None)]),
    (["TEL;TYPE=work:+1 (555) 010-2000 ext. 42"],
     [("+1 (555) 010-2000 ext. 42", "work", False, "+15550102000", "42")]),
    (["item1.TEL:202 555 0170", "item1.X-ABLabel:_$!<HomeFAX>!$_"],
     [("202 555 0170", "home fax", False, "+12025550170", None)]),
    (["item1.TEL;TYPE=CELL:202 555 0171", "item2.X-ABLabel:Boat"],
     [("202 555 0171", "mobile", False, "+12025550171", None)]),
    (["ITEM3.TEL:202 555 0172", "item3.X-ABLABEL:Night line"],
     [("202 555 0172", "Night line", False, "+12025550172", None)]),
    (["TEL;PREF:202 555 0173", "TEL;PREF:202 555 0174"], [
        ("202 555 0173", "", True, "+12025550173", None),
        ("202 555 0174", "", False, "+12025550174", None)]),
    (["TEL:", "TEL:202 555 0175"], [("202 555 0175", "", False, "+12025550175", None)]),
]


@pytest.mark.parametrize(("lines", "expected"), NUMBER_LINES)
def test_vcard_number_lines_parsed(tmp_path, config, lines, expected):
    contact = only_contact(read_text(tmp_path, config, card("FN:Ada", *lines)))
    assert number_tuples(contact) == expected


# -- cards and files ----------------------------------------------------------------


def test_vcard_blank_lines_between_cards(tmp_path, config):
    text = "\r\n" + card("FN:A", TEL) + "\r\n\r\n" + card("FN:B", "TEL:202 555 0151")
    assert read_text(tmp_path, config, text).read == 2


def test_vcard_bom_and_lf_endings(tmp_path, config):
    content = b"\xef\xbb\xbf" + card("FN:Ada", TEL).replace("\r\n", "\n").encode()
    assert only_contact(read_bytes(tmp_path, config, content)).display_name == "Ada"


def test_vcard_nested_agent_card_ignored(tmp_path, config):
    text = card("FN:Boss", TEL, "AGENT:", "BEGIN:VCARD", "FN:Assistant",
                "TEL:202 555 0152", "END:VCARD", version="2.1")
    assert number_tuples(only_contact(read_text(tmp_path, config, text))) == [
        ("+1 202 555 0150", "mobile", False, "+12025550150", None)]


SKIPPED_CARDS = [
    (["FN:Ada", "no colon here", TEL], "card 1 (line 1): cannot be read: line 4 has no colon: "
                                       '"no colon here"'),
    (["VERSION", "FN:Ada", TEL], 'card 1 (line 1): cannot be read: line 3 has no colon: "VERSION"'),
    ([":value", TEL], 'card 1 (line 1): cannot be read: line 3 has no property name: ":value"'),
    (["EMAIL:ada@example.com"], "card 1 (line 1): no name and no number"),
    (["FN:Ada"], 'card 1 (line 1): no phone number ("Ada")'),
    (["ORG:Acme", "TEL:ask reception"], 'card 1 (line 1): no phone number ("Acme", '
                                        '"ask reception" has no digits)'),
]


@pytest.mark.parametrize(("lines", "expected"), SKIPPED_CARDS)
def test_vcard_card_skipped_with_reason(tmp_path, config, lines, expected):
    result = read_text(tmp_path, config, card(*lines))
    assert [str(entry) for entry in result.skipped] == [expected]


def test_vcard_skipped_card_keeps_next(tmp_path, config):
    text = card("FN:Ada", "broken line", TEL) + card("FN:Bob", "TEL:202 555 0153")
    assert only_contact(read_text(tmp_path, config, text)).display_name == "Bob"


BROKEN_FILES = [
    ("missing_end", card("FN:A", TEL) + "BEGIN:VCARD\r\nFN:B\r\n",
     r"line 6: card 2 has no END:VCARD"),
    ("cut_inside_value", card("FN:A", TEL)[:-12], r"line 1: card 1 has no END:VCARD"),
    ("text_between_cards", card("FN:A", TEL) + "Hello\r\n" + card("FN:B", TEL),
     r'line 6: expected BEGIN:VCARD but found "Hello"'),
    ("unknown_charset", card("FN;CHARSET=x-klingon:Ada", TEL),
     r'line 3: unknown character set "x-klingon"'),
    ("nul_byte", card("FN:A\x00da", TEL), r"line 3 contains a NUL byte"),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in BROKEN_FILES],
                         ids=[case[0] for case in BROKEN_FILES])
def test_vcard_broken_file_raises_with_place(tmp_path, config, text, message):
    with pytest.raises(ImportFileError, match=message):
        read_text(tmp_path, config, text)


def test_vcard_undecodable_bytes_raise(tmp_path, config):
    content = card("FN:Ren\xe9e", TEL).encode("latin-1")
    with pytest.raises(ImportFileError, match=r"line 3 is not utf-8 text \(byte 0xe9\)"):
        read_bytes(tmp_path, config, content)


def test_vcard_bad_quoted_printable_charset_raises(tmp_path, config):
    text = card("FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Ren=E9e", TEL, version="2.1")
    with pytest.raises(ImportFileError, match=r"line 3 is not UTF-8 text"):
        read_text(tmp_path, config, text)


def test_vcard_many_cards_stream(tmp_path, config):
    cards = "".join(card(f"N:Family{index};Given;;;", f"TEL:+1 202 555 {index % 10000:04d}")
                    for index in range(5000))
    result = read_text(tmp_path, config, cards)
    assert len(result.contacts) == 5000
