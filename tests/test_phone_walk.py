"""Walk the directory as a phone does, and the phone routes' hard cases."""

from __future__ import annotations

import json
import socket
import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest

from appliance.cisco.text import DIALABLE, LATIN1, UTF8, clean_text, transliterate
from appliance.config import PUBLIC_BASE_URL_MAX, load_config
from appliance.directory.dialplan import DialPlan
from appliance.directory.naming import contact_name
from appliance.model import Contact
from appliance.runtime import build_appliance
from appliance.server import Server, adjustments_from_config
from cisco_schema import CiscoSchema
from conftest import RunningAppliance, reference_file, wait_until, write_ini
from contact_factory import family_li_contacts
from contact_factory import imported_contact as person
from phone_crawler import PhoneCrawler, shows_name, softkey_url

UTF8_PHONE = {"Accept-Charset": "utf-8", "x-CiscoIPPhoneModelName": "CP-8845"}
LATIN1_PHONE = {
    "Accept-Charset": "iso-8859-1, utf-8;q=0.8",
    "x-CiscoIPPhoneModelName": "CP-7960G",
}
PHONES = {"utf8": (UTF8_PHONE, UTF8), "latin1": (LATIN1_PHONE, LATIN1)}

SEARCH_TERMS = {
    "A": [
        "ada",
        "MÜLLER",
        "renee",
        "o'brien",
        "tom &amp;",
        "<sons>",
        "initech",
        "zz-none",
        "x" * 300,
        "",
        "   ",
        "%",
        "\U0001f600",
        "\u0418\u0432\u0430\u043d",
        "a b c",
    ],
    "T": [
        "5550102000",
        "+1 (555) 010-2000",
        "42",
        "2000",
        "0",
        "999999999",
        "*#",
        "1" * 300,
    ],
    "N": ["232", "2320568", "9", "0", "99999999"],
}


@pytest.fixture(scope="module")
def schema() -> CiscoSchema:
    return CiscoSchema(reference_file("CiscoIPPhone.xsd"))


@pytest.fixture
def start(serve):
    """Start an appliance with the phone rate limit off, since a crawler is no phone."""

    def starter(**sections):
        sections.setdefault("phones", {}).setdefault("rate_limit_per_second", "0")
        return serve(**sections)

    return starter


HARD = [
    person("amp", 'Ben "Scoop"', "O'Neil & <Sons>", ("+1 555 010 2001", "")),
    person("entity", "", "Tom &amp; Jerry", ("+1 555 010 2002", "work")),
    person(
        "ext",
        "Ada",
        "Lovelace",
        ("+1 (555) 010-2000 ext. 42", "work"),
        ("+1 555 010 2003", "mobile"),
    ),
    person("company", "", "", ("+1 555 010 2004", "main"), company="Initech & Co"),
    person("number-only", "", "", ("+1 555 010 2005", "mobile")),
    person(
        "long",
        "Maximilian Alexander",
        "von und zu Featherstonehaugh-Cholmondeley",
        ("+44 20 7946 0958", "work"),
    ),
    person("emoji", "Zo\u00eb \U0001f600", "Star\x07", ("+1 555 010 2006", "home")),
    person("renee", "Ren\u00e9e", "M\u00fcller", ("+49 30 1234567", "work")),
    person(
        "cyrillic",
        "\u0418\u0432\u0430\u043d",
        "\u041f\u0435\u0442\u0440\u043e\u0432",
        ("+7 495 123 4567", "work"),
    ),
    person("han", "", "\u738b\u5c0f\u660e", ("+86 10 1234 5678", "mobile")),
    person("internal", "Grace", "Hopper", ("42", "desk")),
    person("polish", "\u0141ukasz", "W\u00f3jcik", ("+48 22 123 45 67", "mobile")),
] + [
    person(
        f"baker{i}", f"Person{i:03d}", f"Baker{i:03d}", (f"+1 212 555 {i:04d}", "work")
    )
    for i in range(95)
]


@pytest.fixture(scope="module", name="running")
def serve_hard_contacts(tmp_path_factory) -> RunningAppliance:
    """One appliance serving HARD, shared by the tests that only read from it."""
    folder = tmp_path_factory.mktemp("hard")
    config = load_config(
        write_ini(
            folder / "config.ini",
            {
                "storage": {"data_dir": str(folder / "data")},
                "server": {"host": "127.0.0.1", "port": "0"},
                "phones": {"rate_limit_per_second": "0"},
            },
        )
    )
    appliance = build_appliance(config)
    server = Server(
        appliance.wsgi, "127.0.0.1", 0, threads=4, **adjustments_from_config(config)
    )
    appliance.bind_port(server.port)
    appliance.start_threads()
    server.start_in_thread()
    running = RunningAppliance(appliance, server)
    wait_until(lambda: running.get("/directory").status_code == 200)
    appliance.store.replace_source("import", HARD)
    yield running
    server.close()
    appliance.stop()


def expected_telephones(
    contacts: list[Contact], dial_plan: DialPlan
) -> dict[str, set[str]]:
    """Return the dial strings of every contact that has one, by source id."""
    expected = {}
    for contact in contacts:
        telephones = {
            dial_plan.dial_string(number.raw, number.e164, number.extension)
            for number in contact.numbers
        } - {None}
        if telephones:
            expected[contact.source_id] = telephones
    return expected


def search_term(contact: Contact) -> tuple[str, str]:
    """Return the form flags and a term a user would type to find ``contact``."""
    for text in (
        contact.family_name,
        contact.given_name,
        contact.company,
        contact.display_name,
        contact.nickname,
    ):
        if any(character.isalnum() for character in text):
            return "A", text
    return "T", contact.numbers[0].raw


def assert_walk_reaches_everyone(running, schema, headers, charset, contacts):
    crawler = PhoneCrawler(running.appliance.base_url, schema, headers)
    dial_plan = running.appliance.directory.dial_plan
    expected = expected_telephones(contacts, dial_plan)
    name_format = running.appliance.config.directory.name_format

    # Browsing alone: forms are fetched but never submitted.
    browse = crawler.walk(running.appliance.base_url + "/directory", {})
    assert browse.problems == []
    shown: dict[str, list[str]] = {}
    for entry in browse.entries:
        shown.setdefault(entry.telephone, []).append(entry.name)
    for contact in contacts:
        name = transliterate(clean_text(contact_name(contact, name_format)), charset)
        for telephone in expected.get(contact.source_id, ()):
            assert telephone in shown, (contact.source_id, telephone)
            assert any(shows_name(text, name) for text in shown[telephone]), (
                shown[telephone],
                name,
            )

    # Searching: each contact by a word of its name, or by its number.
    for contact in contacts:
        if contact.source_id not in expected:
            continue
        flags, term = search_term(contact)
        found = {entry.telephone for entry in crawler.search(browse, flags, term)}
        assert expected[contact.source_id] <= found, (contact.source_id, term)
        number = next(iter(contact.numbers)).raw
        found = {entry.telephone for entry in crawler.search(browse, "T", number)}
        assert expected[contact.source_id] & found, (contact.source_id, number)
    assert browse.problems == []


# -- walks ----------------------------------------------------------------------


@pytest.mark.parametrize("phone", PHONES)
def test_walk_sample_directory_reaches_everyone(start, schema, phone):
    running = start()
    contacts = running.appliance.store.load_contacts()
    assert len(contacts) > 100
    headers, charset = PHONES[phone]
    assert_walk_reaches_everyone(running, schema, headers, charset, contacts)


@pytest.mark.parametrize("phone", PHONES)
def test_walk_hard_contacts_reaches_everyone(running, schema, phone):
    headers, charset = PHONES[phone]
    assert_walk_reaches_everyone(running, schema, headers, charset, HARD)


@pytest.mark.parametrize("phone", PHONES)
def test_walk_search_terms_all_valid(running, schema, phone):
    headers, _ = PHONES[phone]
    crawler = PhoneCrawler(running.appliance.base_url, schema, headers)
    walk = crawler.walk(running.appliance.base_url + "/directory", SEARCH_TERMS)
    assert walk.problems == []
    assert len(walk.visits) > 40


# -- escaping and names ---------------------------------------------------------


def fetch_xml(running, path: str, **headers: str) -> tuple[bytes, ET.Element]:
    response = running.get(path, headers=headers)
    assert response.status_code == 200
    return response.content, ET.fromstring(response.content)


def entry_names(root: ET.Element) -> list[str]:
    return [entry.findtext("Name") for entry in root.iter("DirectoryEntry")]


def test_directory_name_special_characters_round_trip(running):
    _, root = fetch_xml(running, "/directory/search/name?q=oneil")
    assert entry_names(root) == ['Ben "Scoop" O\'Neil & <Sons>']


def test_directory_literal_entity_escaped_once(running):
    body, root = fetch_xml(running, "/directory/search/name?q=jerry")
    assert entry_names(root) == ["Tom &amp; Jerry (work)"]
    assert b"<Name>Tom &amp;amp; Jerry (work)</Name>" in body


def test_directory_company_and_number_only_named(running):
    _, company = fetch_xml(running, "/directory/search/number?q=5550102004")
    _, number_only = fetch_xml(running, "/directory/search/number?q=5550102005")
    assert entry_names(company) == ["Initech & Co (main)"]
    assert entry_names(number_only) == ["+1 555 010 2005 (mobile)"]


def test_directory_latin1_phone_gets_latin1(running):
    response = running.get(
        "/directory/search/name?q=renee",
        headers={"Accept-Charset": "iso-8859-1, utf-8;q=0.8"},
    )
    assert response.headers["Content-Type"] == "text/xml; charset=iso-8859-1"
    assert response.content.startswith(b'<?xml version="1.0" encoding="iso-8859-1"?>')
    assert b"<Name>Ren\xe9e M\xfcller (work)</Name>" in response.content


def test_directory_extension_number_dialable(start):
    running = start(dialplan={"outside_line_prefix": "9"})
    running.appliance.store.replace_source("import", HARD)
    _, root = fetch_xml(running, "/directory/search/name?q=lovelace")
    telephones = [entry.findtext("Telephone") for entry in root.iter("DirectoryEntry")]
    assert telephones == ["915550102000,,42", "915550102003"]
    assert set("".join(telephones)) <= DIALABLE


# -- paging ---------------------------------------------------------------------


def test_browse_95_entries_pages_32_32_31(running):
    url = running.appliance.base_url + "/directory/browse?group=b"
    sizes, has_next, has_prev = [], [], []
    while url:
        _, root = fetch_xml(running, url[len(running.base_url) :])
        sizes.append(len(root.findall("DirectoryEntry")))
        url = softkey_url(root, "Next")
        has_next.append(url is not None)
        has_prev.append(softkey_url(root, "Prev") is not None)
    assert sizes == [32, 32, 31]
    assert has_next == [True, True, False]
    assert has_prev == [False, True, True]


def test_browse_split_group_reaches_exact_family_name(start, schema):
    running = start()
    people = family_li_contacts(120, 0, 60)
    running.appliance.store.replace_source("import", people)
    _, menu = fetch_xml(running, "/directory/browse?group=l")
    items = {
        item.findtext("Name"): item.findtext("URL") for item in menu.iter("MenuItem")
    }
    assert list(items) == ["Li (121)", "Lim (60)"]
    crawler = PhoneCrawler(running.appliance.base_url, schema)
    walk = crawler.walk(items["Li (121)"], {})
    assert walk.problems == []
    assert len(walk.telephones) == 121
    assert "Li (work)" in [entry.name for entry in walk.entries]


@pytest.mark.parametrize(
    "path, prompt",
    [
        ("/directory/browse?group=b", "95 entries, page 1/3"),
        ("/directory/browse?group=b&page=3", "95 entries, page 3/3"),
        ("/directory/browse?group=l", "2 entries"),
        ("/directory/browse?group=t", "1 entry"),
        ("/directory/search/name?q=lovelace", "2 found"),
        ("/directory/search/name?q=baker&page=2", "95 found, page 2/3"),
    ],
)
def test_directory_page_prompt_counts(running, path, prompt):
    _, root = fetch_xml(running, path)
    assert root.findtext("Prompt") == prompt


def test_directory_page_softkeys_add_back_defaults(running):
    _, root = fetch_xml(running, "/directory/browse?group=b&page=2")
    softkeys = {
        key.findtext("Name"): key.findtext("URL") for key in root.iter("SoftKeyItem")
    }
    assert softkeys["Dial"] == "SoftKey:Dial"
    assert softkeys["EditDial"] == "SoftKey:EditDial"
    assert softkeys["Exit"] == "SoftKey:Exit"
    assert softkeys["Next"].endswith("/directory/browse?group=b&page=3")
    assert softkeys["Prev"].endswith("/directory/browse?group=b&page=1")


def test_later_pages_expire(running):
    first = running.get("/directory/browse?group=b")
    second = running.get("/directory/browse?group=b&page=2")
    assert "Expires" not in first.headers
    assert second.headers["Expires"] == "-1"


# -- URLs and parameters --------------------------------------------------------


def test_directory_ignores_phone_query_parameters(running):
    plain = running.get("/directory")
    with_params = running.get(
        "/directory?locale=English_United_States&name=SEP00112233AABB"
    )
    assert with_params.status_code == 200
    assert with_params.content == plain.content


def test_links_keep_public_port_without_host_port(start, schema):
    running = start(server={"public_base_url": "http://192.0.2.10:8080"})
    running.appliance.store.replace_source("import", HARD)
    crawler = PhoneCrawler(
        "http://192.0.2.10:8080",
        schema,
        {"Host": "192.0.2.10"},
        fetch_base=running.base_url,
    )
    walk = crawler.walk("http://192.0.2.10:8080/directory", {"A": ["ada"]})
    links = [
        element.text
        for visit in walk.visits
        for element in visit.root.iter("URL")
        if element.text.startswith("http")
    ]
    assert walk.problems == []
    assert links
    assert all(link.startswith("http://192.0.2.10:8080/") for link in links)


def test_longest_base_url_keeps_links_whole(start, schema):
    base = "http://192.0.2.10:8080/"
    base += "p" * (PUBLIC_BASE_URL_MAX - len(base))
    running = start(server={"public_base_url": base}, phones={"require_token": "yes"},
                    directory={"label_menus": "yes"})
    labelled = [person(f"staff{i}", f"Person{i:03d}", "Baker", (f"+1 212 555 {i:04d}", ""))
                for i in range(40)]
    for contact in labelled:
        contact.labels = ["Staff"]
    running.appliance.store.replace_source("import", labelled)
    _, token = running.appliance.tokens.create("Desk 12")
    crawler = PhoneCrawler(base, schema, UTF8_PHONE, fetch_base=running.base_url)
    keypad_text = "2" * 32
    walk = crawler.walk(f"{base}/directory?token={token}",
                        {"A": ["baker"], "T": ["212"], "N": [keypad_text]})
    searched = [visit.root.findtext("Text") or "" for visit in walk.visits
                if f"q={keypad_text}" in visit.url and "/labels/" in visit.url]
    assert len(base) == PUBLIC_BASE_URL_MAX
    assert walk.problems == []
    assert searched
    assert all(f'"{keypad_text}"' in text for text in searched)


def test_largest_phone_request_within_header_limit(start):
    running = start(server={"max_request_header_bytes": "2048"})
    target = "/directory/search/name?q=" + "a" * (256 - 25)
    cookies = "; ".join(f"c{i}=" + "v" * 252 for i in range(4))  # 255 bytes each
    head = (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: 192.168.100.200:{running.server.port}\r\n"
        "User-Agent: Allegro-Software-WebClient/4.34\r\n"
        "Accept: x-CiscoIPPhone/*;version=3.0, text/*, image/png, */*\r\n"
        "Accept-Language: en-US\r\n"
        "Accept-Charset: iso-8859-1, utf-8;q=0.8\r\n"
        "x-CiscoIPPhoneModelName: CP-7970G\r\n"
        "x-CiscoIPPhoneDisplay: 298, 168, 12, C\r\n"
        "x-CiscoIPPhoneSDKVersion: 8.5.2\r\n"
        f"Cookie: {cookies}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    with socket.create_connection(("127.0.0.1", running.server.port), timeout=10) as sock:
        sock.sendall(head)
        status_line = sock.makefile("rb").readline()
    assert len(target) == 256
    assert len(head) < 2048
    assert status_line.startswith(b"HTTP/1.1 200 ")


def test_links_derived_base_keeps_port(running):
    port = running.server.port
    _, root = fetch_xml(running, "/directory", Host="127.0.0.1")
    links = [element.text for element in root.iter("URL")]
    assert all(link.startswith(f"http://127.0.0.1:{port}/") for link in links)


@pytest.mark.parametrize(
    "path",
    [
        "/directory/browse?group=b&page=abc",
        "/directory/browse?group=b&page=-1",
        "/directory/browse?group=b&page=99999999999999999999",
        "/directory/browse?group=b&page=",
        "/directory/browse?group=" + "b" * 5000,
        "/directory/browse?group=%FF%FE",
        "/directory/browse?group=%00",
        "/directory/browse?group=%23",
        "/directory/search/name?q=" + "a" * 10000,
        "/directory/search/name?q=" + quote("\u00e9\u4e2d" * 200),
        "/directory/search/name?q=%FFada",
        "/directory/search/name?q=%E9",
        "/directory/search/name?q=ada%00%07",
        "/directory/search/name?q=ada&page=2&page=x",
        "/directory/search/number?q=" + "9" * 10000,
        "/directory/search/keypad?q=abc",
        "/directory/search/name?q=ada&q=grace",
    ],
)
def test_bad_parameters_still_valid_page(running, schema, path):
    response = running.get(path)
    assert response.status_code == 200
    assert schema.validate(response.content, strict_order=True) == []


def test_long_search_text_cut_to_fit_links(running):
    _, root = fetch_xml(running, "/directory/search/name?q=" + quote("\u4e2d" * 40))
    searched = root.findtext("Text").split('"')[1]
    assert 0 < len(searched) < 40
    assert searched == "\u4e2d" * len(searched)


def test_latin1_search_text_accepted(running):
    _, root = fetch_xml(running, "/directory/search/name?q=Ren%E9e")
    assert entry_names(root) == ["Ren\u00e9e M\u00fcller (work)"]


@pytest.mark.parametrize(
    "path", ["/directory/nothing-here", "/directory/search/email", "/nothing"]
)
def test_unknown_path_phone_text_404(running, schema, path):
    response = running.get(path, headers=LATIN1_PHONE)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/xml; charset=iso-8859-1"
    assert ET.fromstring(response.content).tag == "CiscoIPPhoneText"
    assert schema.validate(response.content, strict_order=True) == []


def test_empty_directory_says_so(start):
    running = start(directory={"sample_contacts": "no"})
    _, root = fetch_xml(running, "/directory/browse")
    assert root.tag == "CiscoIPPhoneText"
    assert "no contacts" in root.findtext("Text")


def test_no_result_page_says_so(running):
    _, root = fetch_xml(running, "/directory/search/name?q=zzzzqqq")
    assert root.tag == "CiscoIPPhoneText"
    assert root.findtext("Text") == 'No contact matches "zzzzqqq".'


def test_links_carry_phone_token(start):
    running = start(phones={"require_token": "yes"})
    running.appliance.store.replace_source("import", HARD)
    _, token = running.appliance.tokens.create("Desk 12")
    _, root = fetch_xml(running, f"/directory/browse?group=b&token={token}")
    next_url = softkey_url(root, "Next")
    assert f"token={token}" in next_url
    followed = running.get(next_url[len(running.base_url) :])
    assert followed.status_code == 200


# -- caller-ID lookup -----------------------------------------------------------


@pytest.mark.parametrize(
    "number, name",
    [
        ("+15550102003", "Ada Lovelace"),
        ("5550102003", "Ada Lovelace"),
        ("1 555 010 2003", "Ada Lovelace"),
        ("+49 30 1234567", "Ren\u00e9e M\u00fcller"),
        ("42", "Grace Hopper"),
        ("+15550102004", "Initech & Co"),
        ("+15559990000", ""),
        ("anonymous", ""),
        ("", ""),
    ],
)
def test_lookup_plain_text(running, number, name):
    response = running.get(
        "/lookup", params={"number": number, "locale": "x", "name": "y"}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode("utf-8") == name


def test_lookup_json(running):
    response = running.get(
        "/lookup?number=5550102003", headers={"Accept": "application/json"}
    )
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "ok": True,
        "number": "5550102003",
        "found": True,
        "name": "Ada Lovelace",
        "company": None,
        "label": "mobile",
        "telephone": "15550102003",
    }


def test_lookup_json_no_match(running):
    response = running.get(
        "/lookup?number=5559990000", headers={"Accept": "application/json"}
    )
    assert json.loads(response.content)["found"] is False


def test_lookup_phone_one_entry_directory(running, schema):
    response = running.get("/lookup?number=5550102003", headers=UTF8_PHONE)
    root = ET.fromstring(response.content)
    assert root.tag == "CiscoIPPhoneDirectory"
    assert entry_names(root) == ["Ada Lovelace (mobile)"]
    assert schema.validate(response.content, strict_order=True) == []


def test_lookup_missing_number_bad_request(running):
    assert running.get("/lookup").status_code == 400


# -- events and timing ----------------------------------------------------------


def test_phone_requests_emit_events_and_timing(start):
    running = start()
    pages, searches, timings = [], [], []
    running.appliance.events.subscribe("directory.page", lambda **f: pages.append(f))
    running.appliance.events.subscribe(
        "directory.search", lambda **f: searches.append(f)
    )
    running.appliance.middleware.on_finish.append(
        lambda record: timings.append(record.environ.get("appliance.timing"))
    )
    running.get("/directory/search/name?q=a")
    assert pages == [{"object": "CiscoIPPhoneDirectory"}]
    assert searches[0]["kind"] == "name"
    assert searches[0]["results"] > 0
    assert set(timings[-1]) == {"query_s", "render_s"}
    assert timings[-1]["render_s"] > 0
