"""Contact naming, the directory index, its searches, browse groups and rebuilds."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from appliance.config import load_config
from appliance.directory import Directory, paginate
from appliance.directory.dialplan import DialPlan
from appliance.directory.index import (
    BROWSE_SPLIT_ABOVE,
    DirectoryIndex,
    normalize_prefix,
)
from appliance.directory.naming import contact_name, number_labels, words_of
from appliance.events import Events
from appliance.model import Contact, PhoneNumber
from appliance.store import Store
from contact_factory import family_li_contacts, numbered_contacts
from contact_factory import imported_contact as contact

PEOPLE = [
    contact(
        "1",
        "Ada",
        "Lovelace",
        ("+1 (555) 010-2000 ext. 42", "work"),
        ("555 010 2001", "mobile"),
        nickname="Countess",
    ),
    contact("2", "Renée", "Müller", ("+49 30 1234567", "work")),
    contact("3", "Łukasz", "Wójcik", ("+48 22 123 45 67", "mobile")),
    contact("4", "Siobhán", "O'Brien", ("+353 1 234 5678", "")),
    contact("5", "Jean-Luc", "Picard", ("+33 1 23 45 67 89", "work")),
    contact("6", company="Initech & Co"),
    contact("7", "", "", ("+1 555 010 2099", "main"), company="Acme Widgets"),
    contact("8", "", "", ("+1 555 010 2077", "mobile")),
    contact("9", "Grace", "Hopper", ("42", "work")),
    Contact(
        "import",
        "10",
        display_name="Dr. Zoë Quinn",
        numbers=[PhoneNumber("+1 555 010 2055", "home", True, "+15550102055")],
    ),
    contact(
        "11",
        "Alan",
        "Turing",
        ("+44 20 7946 0958", "work"),
        ("+44 20 7946 0958", "main"),
        company="Bletchley Park",
    ),
    contact(
        "12",
        "Émile",
        "Zola",
        ("+33 1 98 76 54 32", "home"),
        ("+33 6 12 34 56 78", "home"),
    ),
]


@pytest.fixture(scope="module")
def index() -> DirectoryIndex:
    return DirectoryIndex(PEOPLE, DialPlan())


def names_found(index: DirectoryIndex, positions: list[int]) -> list[str]:
    return [index.entries[position].name for position in positions]


# -- naming ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "person, name_format, expected",
    [
        (contact("a", "Ada", "Lovelace"), "given_family", "Ada Lovelace"),
        (contact("a", "Ada", "Lovelace"), "family_given", "Lovelace, Ada"),
        (contact("a", "Ada", ""), "family_given", "Ada"),
        (contact("a", "", "Lovelace"), "given_family", "Lovelace"),
        (contact("a", display_name="Dr. Zoë Quinn"), "given_family", "Dr. Zoë Quinn"),
        (contact("a", nickname="The Boss"), "given_family", "The Boss"),
        (contact("a", company="Acme Widgets"), "given_family", "Acme Widgets"),
        (contact("a", job_title="Night porter"), "given_family", "Night porter"),
        (
            contact("a", "", "", ("+1 555 010 2077", "mobile")),
            "given_family",
            "+1 555 010 2077",
        ),
        (contact("a", "  Ada\n", " Lovelace "), "given_family", "Ada Lovelace"),
        (contact("a"), "given_family", "(no name)"),
    ],
)
def test_contact_name_table(person, name_format, expected):
    assert contact_name(person, name_format) == expected


@pytest.mark.parametrize(
    "labels, expected",
    [
        (["work", "mobile"], ["work", "mobile"]),
        (["mobile", "mobile"], ["mobile", "mobile 2"]),
        (["", ""], ["", "2"]),
        (["Mobile", "mobile", "MOBILE"], ["mobile", "mobile 2", "mobile 3"]),
        ([" home  fax "], ["home fax"]),
        (["Work", "Work"], ["work", "work 2"]),
        (["Work Fax", "Mobile"], ["work fax", "mobile"]),
        (["Boat", "boat"], ["Boat", "boat 2"]),
    ],
)
def test_number_labels_table(labels, expected):
    assert number_labels(labels) == expected


def test_entry_labels_same_across_sources():
    google = Contact("google", "people/c1", given_name="Ada", family_name="Lovelace",
                     numbers=[PhoneNumber("+1 212 555 0101", "Mobile", True),
                              PhoneNumber("+1 212 555 0102", "Work"),
                              PhoneNumber("+1 212 555 0103", "Work")])
    imported = contact("1", "Grace", "Hopper", ("+1 212 555 0201", "mobile"),
                       ("+1 212 555 0202", "work"), ("+1 212 555 0203", "work"))
    entries = DirectoryIndex([google, imported], DialPlan()).entries
    labels = {entry.contact.given_name: [] for entry in entries}
    for entry in entries:
        labels[entry.contact.given_name].append(entry.label)
    assert labels["Ada"] == ["mobile", "work", "work 2"]
    assert labels["Grace"] == labels["Ada"]


@pytest.mark.parametrize(
    "text, words",
    [
        ("O'Brien", ["o", "brien", "obrien"]),
        ("Jean-Luc", ["jean", "luc", "jeanluc"]),
        ("Müller", ["muller"]),
        ("Initech & Co", ["initech", "co"]),
    ],
)
def test_words_of_table(text, words):
    assert words_of(text) == words


def test_index_one_entry_per_number(index):
    ada = [entry for entry in index.entries if entry.name == "Ada Lovelace"]
    assert [entry.label for entry in ada] == ["work", "mobile"]
    assert [entry.telephone for entry in ada] == ["15550102000,,42", "15550102001"]


def test_index_same_number_listed_once(index):
    alan = [entry for entry in index.entries if entry.name == "Alan Turing"]
    assert len(alan) == 1


def test_index_repeated_label_numbered(index):
    zola = [entry for entry in index.entries if entry.name == "Émile Zola"]
    assert [entry.label for entry in zola] == ["home", "home 2"]


def test_index_contact_without_number_left_out(index):
    assert "Initech & Co" not in [entry.name for entry in index.entries]


def test_index_company_only_contact_named(index):
    acme = [entry for entry in index.entries if entry.telephone == "15550102099"]
    assert acme[0].name == "Acme Widgets"
    assert acme[0].label == "main"


def test_index_number_only_contact_named(index):
    entries = [entry for entry in index.entries if entry.telephone == "15550102077"]
    assert entries[0].name == "+1 555 010 2077"


def test_index_sorted_by_family_name(index):
    families = [
        entry.sort_text.split()[0] for entry in index.entries if entry.group != "#"
    ]
    assert families == sorted(families)


# -- name, keypad and number search ---------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ("ada", ["Ada Lovelace", "Ada Lovelace"]),
        ("ADA", ["Ada Lovelace", "Ada Lovelace"]),
        ("  ada  lov ", ["Ada Lovelace", "Ada Lovelace"]),
        ("lovelace ada", ["Ada Lovelace", "Ada Lovelace"]),
        ("countess", ["Ada Lovelace", "Ada Lovelace"]),
        ("renee", ["Renée Müller"]),
        ("René", ["Renée Müller"]),
        ("MÜLLER", ["Renée Müller"]),
        ("muller", ["Renée Müller"]),
        ("lukasz", ["Łukasz Wójcik"]),
        ("wojcik", ["Łukasz Wójcik"]),
        ("obrien", ["Siobhán O'Brien"]),
        ("o'brien", ["Siobhán O'Brien"]),
        ("O\u2019Brien", ["Siobhán O'Brien"]),
        ("jean-luc", ["Jean-Luc Picard"]),
        ("jeanluc", ["Jean-Luc Picard"]),
        ("luc", ["Jean-Luc Picard"]),
        ("acme", ["Acme Widgets"]),
        ("widg", ["Acme Widgets"]),
        ("bletchley", ["Alan Turing"]),
        ("zoe", ["Dr. Zoë Quinn"]),
        ("quinn", ["Dr. Zoë Quinn"]),
        ("emile", ["Émile Zola", "Émile Zola"]),
        ("velace", []),
        ("ada hopper", []),
        ("", []),
        ("!!!", []),
        ("x" * 500, []),
    ],
)
def test_search_name_table(index, query, expected):
    assert names_found(index, index.search_name(query)) == expected


@pytest.mark.parametrize(
    "query, expected",
    [
        ("232", ["Ada Lovelace", "Ada Lovelace"]),
        ("2320568", ["Ada Lovelace", "Ada Lovelace"]),
        ("568*232", ["Ada Lovelace", "Ada Lovelace"]),
        ("685537", ["Renée Müller"]),
        ("585279", ["Łukasz Wójcik"]),
        ("627436", ["Siobhán O'Brien"]),
        ("2263", ["Acme Widgets"]),
        ("999999", []),
        ("", []),
        ("0011", []),
    ],
)
def test_search_keypad_table(index, query, expected):
    assert names_found(index, index.search_keypad(query)) == expected


@pytest.mark.parametrize(
    "query, expected",
    [
        ("+1 (555) 010-2000", ["Ada Lovelace"]),
        ("(555) 010-2000", ["Ada Lovelace"]),
        ("555-010-2000", ["Ada Lovelace"]),
        ("15550102000", ["Ada Lovelace"]),
        ("5550102000", ["Ada Lovelace"]),
        ("011 1 555 010 2000", ["Ada Lovelace"]),
        ("2000", ["Ada Lovelace"]),
        ("0102000", ["Ada Lovelace"]),
        ("+49 30 1234567", ["Renée Müller"]),
        ("0049 30 1234567", ["Renée Müller"]),
        ("01149301234567", ["Renée Müller"]),
        ("030 1234567", ["Renée Müller"]),
        ("1234567", ["Renée Müller", "Łukasz Wójcik"]),
        ("+44 20 7946 0958", ["Alan Turing"]),
        ("42", ["Grace Hopper"]),
        ("2", []),
        ("99", []),
        ("", []),
        ("no digits", []),
    ],
)
def test_search_number_table(index, query, expected):
    assert names_found(index, index.search_number(query)) == expected


def test_search_number_strips_outside_line_prefix():
    index = DirectoryIndex(PEOPLE, DialPlan(outside_line_prefix="9"))
    assert names_found(index, index.search_number("9 1 555 010 2000")) == [
        "Ada Lovelace"
    ]


@pytest.mark.parametrize("query", ["0102", "010 20", "555 010"])
def test_search_number_middle_digits_no_match(index, query):
    assert index.search_number(query) == []


@pytest.mark.parametrize(
    "number, expected",
    [
        ("+15550102000", "Ada Lovelace"),
        ("5550102000", "Ada Lovelace"),
        ("15550102001", "Ada Lovelace"),
        ("+49301234567", "Renée Müller"),
        ("0301234567", "Renée Müller"),
        ("42", "Grace Hopper"),
        ("0102055", "Dr. Zoë Quinn"),
        ("2000", None),
        ("5550102", None),
        ("+15559999999", None),
        ("anonymous", None),
        ("", None),
    ],
)
def test_lookup_table(index, number, expected):
    entry = index.lookup(number)
    assert (entry.name if entry else None) == expected


def test_lookup_ambiguous_trailing_digits_none():
    twins = [
        contact("1", "Ann", "One", ("+1 212 555 0101", "work")),
        contact("2", "Bob", "Two", ("+1 312 555 0101", "work")),
    ]
    index = DirectoryIndex(twins, DialPlan())
    assert index.lookup("5550101") is None


# -- browse and paging ----------------------------------------------------------


def test_letter_groups_in_order(index):
    titles = [group.title for group in index.letter_groups()]
    assert titles == ["A", "D", "H", "L", "M", "O", "P", "T", "W", "Z", "#"]


def test_letter_group_counts_entries(index):
    counts = {group.title: group.count for group in index.letter_groups()}
    assert counts["L"] == 2
    assert counts["Z"] == 2


def test_browse_number_only_contact_in_other_group(index):
    _, positions = index.browse("#")
    assert names_found(index, positions) == ["+1 555 010 2077"]


def test_browse_letter_lists_entries(index):
    groups, positions = index.browse("L")
    assert groups == []
    assert names_found(index, positions) == ["Ada Lovelace", "Ada Lovelace"]


def test_browse_ninety_five_pages_of_32():
    people = [
        contact(
            str(i), f"Person{i:03d}", f"Baker{i:03d}", (f"+1 555 01{i:02d}", "work")
        )
        for i in range(95)
    ]
    index = DirectoryIndex(people, DialPlan())
    groups, positions = index.browse("b")
    pages = [paginate(positions, number, 32) for number in (1, 2, 3)]
    assert groups == []
    assert [len(page.items) for page in pages] == [32, 32, 31]
    assert [page.has_next for page in pages] == [True, True, False]
    assert [page.has_previous for page in pages] == [False, True, True]


def test_browse_large_group_split_by_next_letter():
    families = ["Smith", "Schmidt", "Stone"]
    people = [
        contact(str(i), f"Given{i}", families[i % 3], (f"+1 212 555 {i:04d}", "work"))
        for i in range(300)
    ]
    index = DirectoryIndex(people, DialPlan())
    groups, positions = index.browse("s")
    assert positions == []
    assert [(group.title, group.count) for group in groups] == [
        ("Sc", 100),
        ("Sm", 100),
        ("St", 100),
    ]


def test_browse_single_subgroup_levels_skipped():
    people = [
        contact(str(i), f"Given{i:03d}", "Smith", (f"+1 212 555 {i:04d}", "work"))
        for i in range(BROWSE_SPLIT_ABOVE + 40)
    ]
    index = DirectoryIndex(people, DialPlan())
    groups, _ = index.browse("s")
    assert [group.title for group in groups][:2] == ["Smith Given0", "Smith Given1"]


def test_browse_family_name_prefix_keeps_space():
    index = DirectoryIndex(family_li_contacts(99, 50, 50), DialPlan())
    groups, _ = index.browse("l")
    assert [(group.title, group.param, group.count) for group in groups] == [
        ("Li", "li_", 100),
        ("Lia", "lia", 50),
        ("Lim", "lim", 50),
    ]


def test_browse_space_prefix_lists_exact_name():
    index = DirectoryIndex(family_li_contacts(99, 50, 50), DialPlan())
    _, positions = index.browse(normalize_prefix("li_"))
    names = names_found(index, positions)
    assert len(names) == 100
    assert names[0] == "Li"
    assert "Ann000 Liam" not in names


@pytest.mark.parametrize(
    "param, prefix",
    [
        ("li_", "li "),
        ("Sm", "sm"),
        ("M\u00fc", "mu"),
        ("#", "#"),
        (" a__b ", "a b "),
        ("x<y>&z", "xyz"),
        ("a" * 50, "a" * 12),
        ("", ""),
    ],
)
def test_normalize_prefix_table(param, prefix):
    assert normalize_prefix(param) == prefix


def test_browse_unknown_prefix_empty(index):
    assert index.browse("qqq") == ([], [])


@pytest.mark.parametrize("page, number", [(0, 1), (-3, 1), (1, 1), (3, 3), (99, 3)])
def test_paginate_clamps_page(page, number):
    assert paginate(list(range(70)), page, 32).number == number


def test_paginate_empty_list_one_page():
    page = paginate([], 1, 32)
    assert page.count == 1
    assert page.has_next is False


# -- the Directory over a real store --------------------------------------------


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "data")
    yield store
    store.close()


def make_directory(store: Store, events: Events | None = None) -> Directory:
    return Directory(store, load_config(None), events or Events())


def test_directory_rebuilds_after_replace(store):
    directory = make_directory(store)
    store.replace_source("import", PEOPLE[:2])
    assert directory.index().contact_count == 2
    store.replace_source("import", PEOPLE)
    assert directory.index().contact_count == len(PEOPLE)


def test_directory_reuses_index_when_unchanged(store):
    directory = make_directory(store)
    store.replace_source("import", PEOPLE)
    assert directory.index() is directory.index()


def test_directory_sees_other_connection_writes(store, tmp_path):
    directory = make_directory(store)
    store.replace_source("import", PEOPLE[:1])
    assert directory.index().contact_count == 1
    other = Store.open(tmp_path / "data")  # as `python -m appliance import` would
    try:
        other.replace_source("import", PEOPLE[:3])
    finally:
        other.close()
    assert directory.index().contact_count == 3


def test_directory_search_emits_event(store):
    events = Events()
    seen = []
    events.subscribe("directory.search", lambda **fields: seen.append(fields))
    store.replace_source("import", PEOPLE)
    make_directory(store, events).search("name", "ada")
    assert seen[0]["kind"] == "name"
    assert seen[0]["results"] == 2
    assert seen[0]["duration_s"] >= 0


def test_directory_rejects_unknown_search_kind(store):
    with pytest.raises(ValueError, match="search kind"):
        make_directory(store).search("email", "ada")


def test_index_25000_contacts_fast():
    people = numbered_contacts(25_000)
    started = time.perf_counter()
    index = DirectoryIndex(people, DialPlan())
    build_s = time.perf_counter() - started
    assert len(index.entries) == 50_000
    # Measured on a busy 2-core machine: 1 to 3 s to build, under 5 ms a search.
    assert build_s < 20
    for search, query in [
        (index.search_name, "given1"),
        (index.search_name, "f"),
        (index.search_keypad, "44"),
        (index.search_number, "5550042"),
        (index.search_number, "+44 20 7946 0042"),
    ]:
        started = time.perf_counter()
        search(query)
        assert time.perf_counter() - started < 0.25, query


def test_search_cache_shared_by_threads(index):
    # Enough distinct queries from several threads at once to evict entries
    # concurrently; an unguarded eviction raises KeyError or RuntimeError.
    errors: list[BaseException] = []

    def search_many(offset: int) -> None:
        try:
            for number in range(600):
                index.search_number(str(offset * 10_000 + number))
        except BaseException as error:  # collected for the assert below
            errors.append(error)

    threads = [threading.Thread(target=search_many, args=(offset,)) for offset in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a race shows
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
