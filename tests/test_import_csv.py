"""Google Contacts CSV import: both layouts, hard real-world cells, broken files."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from appliance.errors import ImportFileError
from appliance.model import Contact
from appliance.sources.files import ImportResult, read_contact_file
from appliance.sources.sample import load_sample_contacts

DATA = Path(__file__).parent / "data"

CURRENT_HEADER = [
    "First Name", "Middle Name", "Last Name", "Phonetic First Name", "Phonetic Middle Name",
    "Phonetic Last Name", "Name Prefix", "Name Suffix", "Nickname", "File As",
    "Organization Name", "Organization Title", "Organization Department", "Birthday", "Notes",
    "Photo", "Labels", "E-mail 1 - Label", "E-mail 1 - Value", "Phone 1 - Label",
    "Phone 1 - Value", "Phone 2 - Label", "Phone 2 - Value",
]


def current_csv(*rows: dict[str, str], newline: str = "\r\n") -> bytes:
    """Write rows in the current Google layout, quoting cells as Google does."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(CURRENT_HEADER)
    for row in rows:
        writer.writerow([row.get(name, "") for name in CURRENT_HEADER])
    return buffer.getvalue().encode("utf-8")


def read_bytes(tmp_path: Path, config, content: bytes) -> ImportResult:
    path = tmp_path / "contacts.csv"
    path.write_bytes(content)
    return read_contact_file(path, config)


def only_contact(result: ImportResult) -> Contact:
    assert len(result.contacts) == 1, result.skipped
    return result.contacts[0]


@pytest.fixture
def config(make_config):
    return make_config()


@pytest.fixture
def current(config) -> ImportResult:
    return read_contact_file(DATA / "google-current.csv", config)


@pytest.fixture
def older(config) -> ImportResult:
    return read_contact_file(DATA / "google-older.csv", config)


# -- the current layout -------------------------------------------------------


def test_current_layout_is_detected(current):
    assert current.format_name == "Google Contacts CSV, current layout"


def test_current_layout_counts_rows_read(current):
    assert current.read == 5


def test_current_layout_reads_person_fields(current):
    ada = current.contacts[0]
    assert ada.given_name == "Ada"
    assert ada.family_name == "Lovelace"
    assert ada.company == "Analytical Engines Ltd"
    assert ada.job_title == "Engineer"


def test_current_layout_splits_joined_numbers(current):
    ada = current.contacts[0]
    assert [number.raw for number in ada.numbers] == [
        "+1 202 555 0101", "+1 202 555 0102", "(312) 555-0103 ext. 42"]


def test_current_layout_joined_numbers_share_type(current):
    ada = current.contacts[0]
    assert [number.type_label for number in ada.numbers] == ["mobile", "mobile", "work"]


def test_current_layout_star_marks_first_primary(current):
    ada = current.contacts[0]
    assert [number.is_primary for number in ada.numbers] == [True, False, False]


def test_current_layout_parses_e164_and_extension(current):
    work = current.contacts[0].numbers[2]
    assert (work.e164, work.extension) == ("+13125550103", "42")


def test_current_layout_drops_google_system_groups(current):
    assert current.contacts[1].labels == ["Suppliers", "Staff"]


def test_current_layout_reads_nickname_and_middle(current):
    grace = current.contacts[1]
    assert (grace.middle_name, grace.nickname) == ("Brewster", "Amazing Grace")


def test_current_layout_multiline_cell_keeps_line_numbers(current):
    # The note of line 3 spans two lines, so the last row starts on line 7.
    assert [str(entry) for entry in current.skipped] == ["line 7: no name and no number"]


def test_current_layout_company_only_row(current):
    company = current.contacts[2]
    assert company.company == "Harbour & Finch, Ltd"


def test_current_layout_number_only_row(current):
    number_only = current.contacts[3]
    assert [number.e164 for number in number_only.numbers] == ["+15035550106"]


def test_current_layout_origin_names_file_and_line(current):
    assert current.contacts[1].origin == "google-current.csv line 3"


# -- the older layout ---------------------------------------------------------


def test_older_layout_is_detected(older):
    assert older.format_name == "Google Contacts CSV, older layout"


def test_older_layout_reads_display_name(older):
    assert older.contacts[0].display_name == "Renée Müller"


def test_older_layout_reads_type_column(older):
    renee = older.contacts[0]
    assert [(n.type_label, n.is_primary) for n in renee.numbers] == [
        ("mobile", True), ("work fax", False)]


def test_older_layout_reads_organization_columns(older):
    tom = older.contacts[1]
    assert (tom.company, tom.job_title) == ('Quayside "Legal" LLP', "Paralegal")


def test_older_layout_splits_joined_numbers(older):
    tom = older.contacts[1]
    assert [number.e164 for number in tom.numbers] == ["+16175550113", "+16175550114"]


def test_older_layout_reads_group_membership(older):
    assert older.contacts[2].labels == ["Suppliers"]


# -- hard cells -----------------------------------------------------------------

NUMBER = {"Phone 1 - Label": "Mobile", "Phone 1 - Value": "+1 202 555 0150"}

HARD_CELLS = [
    # (row cells, Contact field, value expected in the store)
    ({"Organization Name": "Harbour & Finch"}, "company", "Harbour & Finch"),
    ({"First Name": "<Ada>"}, "given_name", "<Ada>"),
    ({"Last Name": 'The "Boss" Jones'}, "family_name", 'The "Boss" Jones'),
    ({"Last Name": "O'Brien"}, "family_name", "O'Brien"),
    ({"Organization Name": "Tom &amp; Jerry"}, "company", "Tom &amp; Jerry"),
    ({"First Name": "Pizza 🍕 Corner"}, "given_name", "Pizza 🍕 Corner"),
    ({"First Name": "דנה", "Last Name": "לוי"}, "family_name", "לוי"),
    ({"Organization Name": "شركة النور"}, "company", "شركة النور"),
    ({"First Name": "Zoë", "Last Name": "Brontë"}, "family_name", "Brontë"),
    ({"First Name": "Anna\r\nMaria"}, "given_name", "Anna Maria"),
    ({"Last Name": "  Padded   Name "}, "family_name", "Padded Name"),
    ({"Last Name": "Smith, Jr."}, "family_name", "Smith, Jr."),
    ({"Nickname": "Sparky"}, "nickname", "Sparky"),
    ({"Organization Name": "First Co ::: Second Co"}, "company", "First Co"),
    ({"Labels": "* myContacts ::: Staff ::: Staff"}, "labels", ["Staff"]),
    ({"Labels": "* starred ::: Night shift"}, "labels", ["Night shift"]),
]


@pytest.mark.parametrize(("cells", "field", "expected"), HARD_CELLS)
def test_csv_hard_cell_kept_as_text(tmp_path, config, cells, field, expected):
    result = read_bytes(tmp_path, config, current_csv({**NUMBER, **cells}))
    assert getattr(only_contact(result), field) == expected


NUMBER_CELLS = [
    # (label cell, value cell, [(raw, type_label, is_primary, e164, extension)])
    ("Mobile", "+1 202 555 0151", [("+1 202 555 0151", "mobile", False, "+12025550151", None)]),
    ("* Work", "(202) 555-0152", [("(202) 555-0152", "work", True, "+12025550152", None)]),
    ("Work Fax", "202.555.0153", [("202.555.0153", "work fax", False, "+12025550153", None)]),
    ("Boat", "+44 20 7946 0154", [("+44 20 7946 0154", "Boat", False, "+442079460154", None)]),
    ("", "+1 (555) 010-2000 ext. 42", [("+1 (555) 010-2000 ext. 42", "", False, "+15550102000", "42")]),
    ("MOBILE", "202 555 0155 ::: 202 555 0156", [
        ("202 555 0155", "mobile", False, "+12025550155", None),
        ("202 555 0156", "mobile", False, "+12025550156", None)]),
    ("* Home", "202 555 0157 ::: 202 555 0158", [
        ("202 555 0157", "home", True, "+12025550157", None),
        ("202 555 0158", "home", False, "+12025550158", None)]),
    ("Work", "4021", [("4021", "work", False, None, None)]),
    ("Work", "n/a ::: 202 555 0159", [("202 555 0159", "work", False, "+12025550159", None)]),
]


@pytest.mark.parametrize(("label", "value", "expected"), NUMBER_CELLS)
def test_csv_number_cells_parsed(tmp_path, config, label, value, expected):
    row = {"First Name": "Ada", "Phone 1 - Label": label, "Phone 1 - Value": value}
    contact = only_contact(read_bytes(tmp_path, config, current_csv(row)))
    numbers = [(n.raw, n.type_label, n.is_primary, n.e164, n.extension) for n in contact.numbers]
    assert numbers == expected


def test_csv_one_primary_per_contact(tmp_path, config):
    row = {"First Name": "Ada", "Phone 1 - Label": "* Mobile", "Phone 1 - Value": "202 555 0160",
           "Phone 2 - Label": "* Work", "Phone 2 - Value": "202 555 0161"}
    contact = only_contact(read_bytes(tmp_path, config, current_csv(row)))
    assert [number.is_primary for number in contact.numbers] == [True, False]


ENCODINGS = [
    ("bom_crlf", b"\xef\xbb\xbf", "\r\n"),
    ("bom_lf", b"\xef\xbb\xbf", "\n"),
    ("plain_crlf", b"", "\r\n"),
    ("plain_lf", b"", "\n"),
]


@pytest.mark.parametrize(("prefix", "newline"), [case[1:] for case in ENCODINGS],
                         ids=[case[0] for case in ENCODINGS])
def test_csv_bom_and_line_endings_read(tmp_path, config, prefix, newline):
    row = {"First Name": "Renée", "Notes": "two\nlines", **NUMBER}
    result = read_bytes(tmp_path, config, prefix + current_csv(row, newline=newline))
    assert only_contact(result).given_name == "Renée"


def test_csv_blank_lines_not_counted(tmp_path, config):
    content = current_csv({"First Name": "Ada", **NUMBER}) + b"\r\n\r\n,,,\r\n"
    result = read_bytes(tmp_path, config, content)
    assert result.read == 1


def test_csv_short_row_padded(tmp_path, config):
    content = current_csv() + "Ada,,Lovelace".encode() + b"\r\n"
    result = read_bytes(tmp_path, config, content)
    assert [str(entry) for entry in result.skipped] == ['line 2: no phone number ("Ada Lovelace")']


# -- rows that are skipped ------------------------------------------------------

SKIPPED_ROWS = [
    ({"Labels": "* myContacts", "Notes": "only a note"}, "line 2: no name and no number"),
    ({"First Name": "Ada", "Last Name": "Lovelace"}, 'line 2: no phone number ("Ada Lovelace")'),
    ({"Organization Name": "Acme", "Phone 1 - Value": "ask reception"},
     'line 2: no phone number ("Acme", "ask reception" has no digits)'),
    ({"Phone 1 - Value": "none"}, 'line 2: no phone number ("none" has no digits)'),
    ({"First Name": "Bob", "Phone 1 - Value": "ext 42"},
     'line 2: no phone number ("Bob", "ext 42" is an extension with no number before it: '
     "set [dialplan] internal_digits to 2 or more to dial it as an internal extension, "
     "then import again)"),
    ({"First Name": "Bob", "Phone 1 - Value": "ext 1234567890"},
     'line 2: no phone number ("Bob", "ext 1234567890" is an extension with no number '
     "before it, longer than the 8 digits [dialplan] internal_digits allows)"),
    ({"First Name": "Bob", "Phone 1 - Value": "1" * 40},
     f'line 2: no phone number ("Bob", "{"1" * 40}" has more digits than a phone dials '
     "(32 at most))"),
]


@pytest.mark.parametrize(("cells", "expected"), SKIPPED_ROWS)
def test_csv_row_skipped_with_reason(tmp_path, config, cells, expected):
    result = read_bytes(tmp_path, config, current_csv(cells))
    assert [str(entry) for entry in result.skipped] == [expected]


def test_csv_extension_alone_kept_when_internal(tmp_path, make_config):
    config = make_config(dialplan={"internal_digits": "4"})
    cells = {"First Name": "Bob", "Phone 1 - Value": "ext 42", "Phone 2 - Value": "x 12345"}
    result = read_bytes(tmp_path, config, current_csv(cells))
    assert [number.raw for number in only_contact(result).numbers] == ["ext 42"]
    assert result.skipped == []


def test_csv_row_with_extra_cells_skipped(tmp_path, config):
    content = current_csv() + b"Ada," + b"," * len(CURRENT_HEADER) + b"\r\n"
    result = read_bytes(tmp_path, config, content)
    assert result.skipped[0].reason == "cannot be read"


def test_csv_skipped_row_keeps_others(tmp_path, config):
    content = current_csv({"First Name": "Ada"}, {"First Name": "Bob", **NUMBER})
    result = read_bytes(tmp_path, config, content)
    assert [contact.given_name for contact in result.contacts] == ["Bob"]


# -- files that cannot be imported at all -----------------------------------------

HEADER_LINE = ",".join(CURRENT_HEADER).encode() + b"\r\n"
BROKEN_FILES = [
    ("truncated_quote", HEADER_LINE + b'Ada,,"Love\r\nlace', r"line 2: a quoted cell .* never closed"),
    ("text_after_quote", HEADER_LINE + b'"Ada"x,,Lovelace\r\n', r"line 2: a quote inside"),
    ("outlook_header", b"First Name,Last Name,Business Phone,Mobile Phone\r\nAda,Lovelace,1,2\r\n",
     r"line 1: .* neither Google Contacts CSV layout.*Outlook"),
    ("unknown_header", b"name;phone\r\nAda;202 555 0100\r\n", r'line 1: the header "name;phone"'),
    ("latin1_bytes", HEADER_LINE + "Ren\u00e9e,,M\u00fcller\r\n".encode("latin-1"),
     r"line 2 is not UTF-8 text \(byte 0xe9 at column 4\)"),
    ("binary_garbage", bytes(range(256)) * 8, r"NUL byte"),
    ("empty", b"", r"the file is empty"),
    ("only_blank_lines", b"\r\n  \r\n", r"the file is empty"),
    ("only_bom", b"\xef\xbb\xbf", r"the file is empty"),
    ("utf16", "First Name,Last Name\r\n".encode("utf-16"), r"UTF-16"),
]


@pytest.mark.parametrize(("content", "message"), [case[1:] for case in BROKEN_FILES],
                         ids=[case[0] for case in BROKEN_FILES])
def test_csv_broken_file_raises_with_place(tmp_path, config, content, message):
    with pytest.raises(ImportFileError, match=message):
        read_bytes(tmp_path, config, content)


def test_csv_missing_file_raises(tmp_path, config):
    with pytest.raises(ImportFileError, match="not found"):
        read_contact_file(tmp_path / "missing.csv", config)


def test_csv_folder_path_raises(tmp_path, config):
    with pytest.raises(ImportFileError, match="is a folder"):
        read_contact_file(tmp_path, config)


# -- source ids -------------------------------------------------------------------


def test_source_id_stable_across_reads(config):
    first = read_contact_file(DATA / "google-current.csv", config)
    second = read_contact_file(DATA / "google-current.csv", config)
    assert [c.source_id for c in first.contacts] == [c.source_id for c in second.contacts]


def test_source_id_counts_duplicate_names(tmp_path, config):
    row = {"First Name": "Sam", "Last Name": "Taylor", **NUMBER}
    result = read_bytes(tmp_path, config, current_csv(row, row))
    first, second = (contact.source_id for contact in result.contacts)
    assert second == f"{first}-2"


def test_source_id_ignores_letter_case(tmp_path, config):
    lower = read_bytes(tmp_path, config, current_csv({"First Name": "ada", **NUMBER}))
    upper = read_bytes(tmp_path, config, current_csv({"First Name": "ADA", **NUMBER}))
    assert only_contact(lower).source_id == only_contact(upper).source_id


def test_source_id_of_number_only_uses_digits(tmp_path, config):
    rows = [{"Phone 1 - Value": "202 555 0170"}, {"Phone 1 - Value": "202 555 0171"}]
    result = read_bytes(tmp_path, config, current_csv(*rows))
    assert len({contact.source_id for contact in result.contacts}) == 2


# -- the bundled sample contacts ----------------------------------------------------


@pytest.fixture
def samples(config) -> list[Contact]:
    return load_sample_contacts(config)


def test_samples_about_two_hundred(samples):
    assert 190 <= len(samples) <= 210


def test_samples_all_from_sample_source(samples):
    assert {contact.source for contact in samples} == {"sample"}


def test_samples_over_one_page_under_one_letter(samples):
    letters = Counter(contact.family_name[:1].upper() for contact in samples if contact.family_name)
    assert max(letters.values()) > 32


def test_samples_include_company_only(samples):
    companies = [c for c in samples if c.company and not (c.given_name or c.family_name)]
    assert len(companies) >= 10


def test_samples_include_number_only(samples):
    nameless = [c for c in samples if not (c.given_name or c.family_name or c.display_name
                                           or c.nickname or c.company)]
    assert len(nameless) >= 1


def test_samples_include_ampersands(samples):
    assert any("&" in contact.company for contact in samples)


@pytest.mark.parametrize("letter", list("éüøóćŁ"))
def test_samples_include_accents(samples, letter):
    names = " ".join(contact.given_name + contact.family_name for contact in samples)
    assert letter in names


def test_samples_include_long_names(samples):
    longest = max(len(f"{c.given_name} {c.family_name}") for c in samples)
    assert longest > 32


def test_samples_several_numbers_each(samples):
    assert sum(1 for contact in samples if len(contact.numbers) >= 3) >= 20


def test_samples_numbers_all_parse(samples):
    numbers = [number for contact in samples for number in contact.numbers]
    assert all(number.e164 for number in numbers)


def test_samples_numbers_are_unique(samples):
    numbers = [number.e164 for contact in samples for number in contact.numbers]
    assert len(numbers) == len(set(numbers))


def test_samples_numbers_in_fiction_ranges(samples):
    numbers = [number.e164 for contact in samples for number in contact.numbers]
    fictional = [n for n in numbers
                 if (n.startswith("+1") and n[5:9] == "5550" and n[9] == "1")
                 or n.startswith(("+4420794601", "+447700900"))]
    assert fictional == numbers


def test_samples_carry_labels(samples):
    assert any("Staff" in contact.labels for contact in samples)
