"""Label directories on the phone: the top menu, the Groups pages, and a walk of
each label's browse and search pages."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from appliance.cisco.objects import MAX_MENU_ITEMS
from appliance.cisco.text import TITLE_MAX, clean_text, transliterate
from appliance.directory.labels import label_key
from appliance.directory.naming import contact_name
from appliance.model import Contact
from cisco_schema import CiscoSchema
from conftest import reference_file
from contact_factory import imported_contact as person
from phone_crawler import PhoneCrawler, shows_name, softkey_url
from test_phone_walk import (
    HARD,
    LATIN1_PHONE,
    PHONES,
    SEARCH_TERMS,
    UTF8_PHONE,
    expected_telephones,
    search_term,
)

# The top menu's own items: three searches and Browse A–Z.
OWN_ITEMS = 4
LABELS_ON = {"label_menus": "yes"}


@pytest.fixture(scope="module")
def schema() -> CiscoSchema:
    return CiscoSchema(reference_file("CiscoIPPhone.xsd"))


@pytest.fixture
def start(serve):
    """Start an appliance with the phone rate limit off, since a crawler is no phone."""

    def starter(contacts: list[Contact] | None = None, **sections):
        sections.setdefault("phones", {}).setdefault("rate_limit_per_second", "0")
        running = serve(**sections)
        if contacts is not None:
            running.appliance.store.replace_source("import", contacts)
        return running

    return starter


def fetch_xml(running, url: str, **headers: str) -> tuple[bytes, ET.Element]:
    """Fetch a path or an absolute link of ``running`` and parse it."""
    path = url[len(running.appliance.base_url) :] if url.startswith("http") else url
    response = running.get(path, headers=headers)
    assert response.status_code == 200, (path, response.status_code)
    return response.content, ET.fromstring(response.content)


def menu_items(root: ET.Element) -> dict[str, str]:
    return {
        item.findtext("Name"): item.findtext("URL") for item in root.iter("MenuItem")
    }


def teams(count: int) -> list[Contact]:
    """Return one contact in each of ``count`` labels, Team 000 and on."""
    return [
        person(
            f"team{i}",
            f"Member{i:03d}",
            "Teamson",
            (f"+1 212 555 {i:04d}", "work"),
            labels=[f"Team {i:03d}"],
        )
        for i in range(count)
    ]


# -- the top menu ---------------------------------------------------------------


@pytest.mark.parametrize("setting, shown", [("yes", True), ("no", False)])
def test_top_menu_labels_only_when_on(start, setting, shown):
    running = start(directory={"label_menus": setting})
    _, root = fetch_xml(running, "/directory")
    names = list(menu_items(root))
    assert names[:OWN_ITEMS] == [
        "Search by name",
        "Search by number",
        "Keypad search (2=ABC)",
        "Browse A\u2013Z",
    ]
    labels = ["Board", "Customers", "Facilities", "Staff", "Suppliers"]
    assert names[OWN_ITEMS:] == (labels if shown else [])


def test_top_menu_only_listed_labels(start):
    running = start(directory={"label_menus": "yes", "menu_labels": "staff, Board"})
    _, root = fetch_xml(running, "/directory")
    assert list(menu_items(root))[OWN_ITEMS:] == ["Board", "Staff"]


@pytest.mark.parametrize(
    "labels, last",
    [
        (MAX_MENU_ITEMS - OWN_ITEMS, "Team 095"),
        (MAX_MENU_ITEMS - OWN_ITEMS + 1, "Groups"),
    ],
)
def test_top_menu_labels_fill_to_limit(start, labels, last):
    running = start(teams(labels), directory=LABELS_ON)
    _, root = fetch_xml(running, "/directory")
    names = list(menu_items(root))
    assert names[-1] == last
    assert len(names) <= MAX_MENU_ITEMS


def test_groups_menu_pages_every_label(start, schema):
    running = start(teams(230), directory=LABELS_ON)
    _, root = fetch_xml(running, "/directory")
    url = menu_items(root)["Groups"]
    names, sizes, prompts, softkeys = [], [], [], []
    while url:
        body, page = fetch_xml(running, url)
        assert schema.validate(body, strict_order=True) == []
        items = menu_items(page)
        names += list(items)
        sizes.append(len(items))
        prompts.append(page.findtext("Prompt"))
        softkeys.append([key.findtext("Name") for key in page.iter("SoftKeyItem")])
        url = softkey_url(page, "Next")
    assert sizes == [100, 100, 30]
    assert names == [f"Team {i:03d}" for i in range(230)]
    assert prompts == [f"230 groups, page {n}/3" for n in (1, 2, 3)]
    assert softkeys == [
        ["Select", "Exit", "Next"],
        ["Select", "Exit", "Next", "Prev"],
        ["Select", "Exit", "Prev"],
    ]


def test_groups_menu_items_open_their_label(start):
    running = start(teams(230), directory=LABELS_ON)
    _, page = fetch_xml(running, "/directory/labels?page=3")
    items = menu_items(page)
    _, menu = fetch_xml(running, items["Team 229"])
    assert menu.findtext("Title") == "Team 229"
    assert menu.findtext("Prompt") == "1 entry"


def test_groups_menu_later_pages_expire(start):
    running = start(teams(230), directory=LABELS_ON)
    first = running.get("/directory/labels")
    second = running.get("/directory/labels?page=2")
    assert "Expires" not in first.headers
    assert second.headers["Expires"] == "-1"


def test_groups_menu_without_labels_says_so(start):
    running = start(HARD, directory=LABELS_ON)
    _, root = fetch_xml(running, "/directory/labels")
    assert root.tag == "CiscoIPPhoneText"
    assert "group" in root.findtext("Text")


# -- names on the phone -----------------------------------------------------------

LODZ = "\u0141\u00f3d\u017a & Krak\u00f3w"
ODD_LABELS = [
    person("lodz", "Ola", "Nowak", ("+48 42 123 45 67", "work"), labels=[LODZ]),
    person("rnd", "Rita", "Dee", ("+1 555 010 2100", "work"), labels=["R&amp;D"]),
]


@pytest.mark.parametrize(
    "phone, shown",
    [("utf8", LODZ), ("latin1", "L\u00f3dz & Krak\u00f3w")],
)
def test_label_name_escaped_once_per_charset(start, phone, shown):
    running = start(ODD_LABELS, directory=LABELS_ON)
    headers, charset = PHONES[phone]
    body, root = fetch_xml(running, "/directory", **headers)
    escaped = shown.replace("&", "&amp;")
    assert f"<Name>{escaped}</Name>".encode(charset) in body
    body, menu = fetch_xml(running, menu_items(root)[shown], **headers)
    assert f"<Title>{escaped}</Title>".encode(charset) in body
    assert menu.findtext("Title") == shown


def test_label_literal_entity_escaped_once(start):
    running = start(ODD_LABELS, directory=LABELS_ON)
    body, root = fetch_xml(running, "/directory")
    assert b"<Name>R&amp;amp;D</Name>" in body
    assert "R&amp;D" in menu_items(root)


def test_label_group_title_keeps_letter(start):
    long_name = "Customer Success and Renewals, EMEA"
    people = [
        person(
            f"n{i}",
            f"Nia{i}",
            "Nakamura",
            (f"+1 212 555 {i:04d}", "work"),
            labels=[long_name],
        )
        for i in range(3)
    ]
    running = start(people, directory=LABELS_ON)
    _, top = fetch_xml(running, "/directory")
    _, menu = fetch_xml(running, menu_items(top)[long_name])
    _, letters = fetch_xml(running, menu_items(menu)["Browse A\u2013Z"])
    _, page = fetch_xml(running, menu_items(letters)["N (3)"])
    title = page.findtext("Title")
    assert title.endswith(": N")
    assert len(title) == TITLE_MAX
    assert title.startswith("Customer Success")


# -- unknown labels -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/directory/labels/00000000",
        "/directory/labels/00000000/browse",
        "/directory/labels/00000000/browse?group=a&page=2",
        "/directory/labels/00000000/search/name",
        "/directory/labels/00000000/search/number?q=555",
        "/directory/labels/" + "f" * 300,
        "/directory/labels/%C3%A9%00",
        "/directory/labels/..%2F..%2Fetc",
    ],
)
def test_unknown_label_phone_text_404(start, schema, path):
    running = start(directory=LABELS_ON)
    response = running.get(path, headers=LATIN1_PHONE)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/xml; charset=iso-8859-1"
    assert ET.fromstring(response.content).tag == "CiscoIPPhoneText"
    assert schema.validate(response.content, strict_order=True) == []


def test_label_pages_404_when_off(start, schema):
    on = start(directory=LABELS_ON)
    _, root = fetch_xml(on, "/directory")
    staff = menu_items(root)["Staff"][len(on.appliance.base_url) :]
    off = start(directory={"label_menus": "no"})
    for path in (staff, staff + "/browse", "/directory/labels"):
        response = off.get(path, headers=UTF8_PHONE)
        assert response.status_code == 404, path
        assert schema.validate(response.content, strict_order=True) == []


def test_label_gone_after_sync_404(start):
    running = start(ODD_LABELS, directory=LABELS_ON)
    _, root = fetch_xml(running, "/directory")
    link = menu_items(root)["R&amp;D"]
    running.appliance.store.replace_source("import", ODD_LABELS[:1])
    response = running.get(link[len(running.appliance.base_url) :])
    assert response.status_code == 404
    assert "not in the directory" in ET.fromstring(response.content).findtext("Text")


def test_label_links_carry_phone_token(start):
    running = start(phones={"require_token": "yes"}, directory=LABELS_ON)
    _, token = running.appliance.tokens.create("Desk 12")
    _, root = fetch_xml(running, f"/directory?token={token}")
    link = menu_items(root)["Suppliers"]
    assert f"token={token}" in link
    _, menu = fetch_xml(running, link)
    assert all(f"token={token}" in url for url in menu_items(menu).values())


# -- walking each label ---------------------------------------------------------


def label_members(contacts: list[Contact], name: str) -> list[Contact]:
    key = label_key(name)
    return [c for c in contacts if key in {label_key(label) for label in c.labels}]


def assert_label_walk(running, schema, headers, charset, name, link, contacts):
    """Walk one label's directory; check that it shows every member with a number
    and no other contact, by browsing and by searching."""
    crawler = PhoneCrawler(running.appliance.base_url, schema, headers)
    dial_plan = running.appliance.directory.dial_plan
    name_format = running.appliance.config.directory.name_format
    members = label_members(contacts, name)
    outsiders = [contact for contact in contacts if contact not in members]
    expected = expected_telephones(members, dial_plan)
    shown_names: dict[str, list[str]] = {}
    for contact in members:
        text = transliterate(clean_text(contact_name(contact, name_format)), charset)
        for telephone in expected.get(contact.source_id, ()):
            shown_names.setdefault(telephone, []).append(text)

    # Browsing: every member's numbers, and only members.
    walk = crawler.walk(link, {})
    assert walk.problems == []
    assert set(shown_names) <= walk.telephones, name
    for shown in walk.entries:
        owners = shown_names.get(shown.telephone, [])
        assert any(shows_name(shown.name, owner) for owner in owners), (name, shown)

    # Searching in the label: members are found, outsiders are not.
    for contact in members:
        if contact.source_id in expected:
            flags, term = search_term(contact)
            found = {entry.telephone for entry in crawler.search(walk, flags, term)}
            assert expected[contact.source_id] <= found, (name, term)
    outside = expected_telephones(outsiders, dial_plan)
    for contact in outsiders[:15]:
        if contact.source_id in outside:
            flags, term = search_term(contact)
            found = {entry.telephone for entry in crawler.search(walk, flags, term)}
            assert found <= set(shown_names), (name, term)
    assert walk.problems == []


@pytest.mark.parametrize("phone", PHONES)
def test_walk_each_label_shows_members_only(start, schema, phone):
    running = start(directory=LABELS_ON)
    # The sample contacts stay, and the hard cases join them without labels.
    in_two = person(
        "two-labels",
        "Ola",
        "Nowak",
        ("+48 42 123 45 67", "work"),
        labels=[LODZ, "staff"],
    )
    running.appliance.store.replace_source("import", HARD + [in_two], also_clear=())
    contacts = running.appliance.store.load_contacts()
    headers, charset = PHONES[phone]
    _, root = fetch_xml(running, "/directory", **headers)
    links = list(menu_items(root).values())[OWN_ITEMS:]
    index = running.appliance.directory.index()
    labels = [index.get_label(link.rpartition("/")[2]) for link in links]
    assert [label.name for label in labels] == [
        "Board",
        "Customers",
        "Facilities",
        LODZ,
        "Staff",
        "Suppliers",
    ]
    for label, link in zip(labels, links):
        assert_label_walk(running, schema, headers, charset, label.name, link, contacts)


@pytest.mark.parametrize("phone", PHONES)
def test_walk_with_labels_all_valid(start, schema, phone):
    running = start(directory=LABELS_ON)
    headers, _ = PHONES[phone]
    crawler = PhoneCrawler(running.appliance.base_url, schema, headers)
    walk = crawler.walk(running.appliance.base_url + "/directory", SEARCH_TERMS)
    assert walk.problems == []
    label_pages = [visit for visit in walk.visits if "/directory/labels/" in visit.url]
    assert len(label_pages) > 100
