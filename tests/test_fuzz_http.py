"""Random and hostile input: every route and parameter, import files, the config file.

The HTTP tests send raw requests over a socket, so they can carry what a normal
client library refuses to send: invalid UTF-8 and bad percent-escapes in the
request line, control characters, and header values that try to add headers. Each
response must not be a 5xx (except 503 from the health endpoints, which is their
response to a failing check), every XML body must parse and, for Cisco objects,
keep the limits of CiscoIPPhone.xsd, and every JSON body must parse. The last HTTP
test reads every log line the server wrote and checks that each is one JSON object.

Import files and config files go through their parsers in-process: they either
load or raise the appliance's own error with a message, never anything else.
Example counts are kept small so the whole file runs in well under a minute.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_from_bytes
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import SETTINGS, load_config
from appliance.errors import ConfigError, ImportFileError
from appliance.logs import ACCESS_LOG, APP_LOG, ERRORS_LOG, setup_logging
from appliance.model import Contact, PhoneNumber
from appliance.runtime import build_appliance
from appliance.server import Server, adjustments_from_config
from appliance.sources.files import read_contact_file, run_import
from appliance.store import Store
from appliance.web.admin_auth import hash_password
from cisco_schema import CiscoSchema
from tests.conftest import REFERENCE_DIR, wait_until, write_ini

DATA = Path(__file__).resolve().parent / "data"
PASSWORD = "fuzzing password"
CSRF = re.compile(rb'name="csrf_token" value="([^"]+)"')
# Health endpoints return 503 when a check fails; everything else must stay below 500.
HEALTH_PATHS = ("/health", "/readyz")

FUZZ = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
FEW = settings(FUZZ, max_examples=15)

HOSTILE_TEXT = [
    "", " ", "%", "%%", "%ZZ", "%C3%28", "%00", "\u202e", "😀", "𝔘𝔫𝔦", "Ⅻ", "١٢٣", "ß",
    "İ", "a\u0301", "ﬁ", "<script>alert(1)</script>", "' OR 1=1 --", "../../../etc/passwd",
    "A" * 5000, "9" * 300, "-1", "0", "1e308", "NaN", "null", "[]", "{}", "\\", "'", '"',
    "&amp;", "&#0;", "]]>", "\t", "\r\nSet-Cookie: injected=1", "Tom &amp; Jerry",
]
PAGE_TEXT = ["0", "-1", "1", "2", "99999999999999999999", "1e9", "NaN", "Infinity", " 1",
             "1 ", "0x10", "²", "١", "1.5", "+3"]
BAD_ESCAPES = [b"%", b"%Z", b"%zz", b"%C3%28", b"%ff%fe", b"%u00e9", b"%00", b"%0d%0a",
               b"%E2%82", b"%F0%9F%98"]
ACCEPT_CHARSETS = ["utf-8", "iso-8859-1, utf-8;q=0.8", "utf-8;q=0", "*", "*;q=0",
                   "latin1;q=abc", ";;;,,,", "koi8-r", "utf-8;q=0.8, iso-8859-1;q=0.9"]
MODELS = ["CP-7940G", "CP-7960G", "CP-7970G", "CP-8845", "CP-7841", "", "x" * 300]
ACCEPTS = ["application/json", "text/html", "*/*", "text/xml",
           "application/openmetrics-text; version=1.0.0", "application/health+json",
           "junk/;;;q=x", ""]


def text_values() -> st.SearchStrategy[str]:
    """Text from every script, hostile fixed strings and very long strings."""
    return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=120),
                     st.text(st.characters(min_codepoint=0x80, exclude_categories=["Cs"]),
                             max_size=40))


def query_value() -> st.SearchStrategy[bytes]:
    """A query value as sent on the wire: escaped text, escaped bytes, or raw bytes."""
    return st.one_of(
        text_values().map(lambda value: quote(value, safe="").encode("ascii")),
        st.sampled_from(PAGE_TEXT).map(lambda value: quote(value).encode("ascii")),
        st.binary(max_size=40).map(lambda value: quote_from_bytes(value, safe="").encode()),
        st.binary(max_size=20).filter(lambda value: not set(value) & set(b" \r\n#")),
        st.sampled_from(BAD_ESCAPES))


def header_value() -> st.SearchStrategy[bytes]:
    return st.one_of(st.sampled_from([value.encode() for value in ACCEPT_CHARSETS + MODELS]),
                     text_values().map(lambda value: value.encode("utf-8")),
                     st.binary(max_size=40))


# -- a raw HTTP client -------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")


def raw_request(port: int, method: bytes, target: bytes,
                headers: list[tuple[bytes, bytes]] = (), body: bytes = b"") -> RawResponse:
    """Send one HTTP/1.0 request exactly as given and read the whole response."""
    lines = [method + b" " + target + b" HTTP/1.0", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        try:
            connection.sendall(data)
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            # Waitress closes at once after rejecting an oversized request; what it
            # sent before the reset is still the answer.
            if not chunks:
                raise
    return parse_response(b"".join(chunks))


def parse_response(data: bytes) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = [tuple(part.strip() for part in line.split(":", 1))  # type: ignore[misc]
               for line in header_lines if ":" in line]
    return RawResponse(status, headers, body)


# -- the server under test ----------------------------------------------------------------


class Site:
    """The fuzzed server and what the tests need to reach it as a phone or an admin."""

    def __init__(self, port: int, appliance, log_dir: Path, console: io.StringIO,
                 cookie: bytes, csrf: bytes, token: str, schema: CiscoSchema | None) -> None:
        self.port = port
        self.appliance = appliance
        self.log_dir = log_dir
        self.console = console
        self.cookie = cookie
        self.csrf = csrf
        self.token = token
        self.schema = schema

    def __repr__(self) -> str:
        return f"Site(port={self.port})"

    def request(self, method: bytes, target: bytes, headers=(), body: bytes = b"",
                admin: bool = False) -> RawResponse:
        headers = list(headers)
        if admin:
            headers.append((b"Cookie", self.cookie))
        return raw_request(self.port, method, target, headers, body)


HOSTILE_CONTACTS = [
    ("Tom &amp; Jerry", "<b>Bold</b> & Sons", "+1 202 555 0101"),
    ("Renée", "Müller-Łukasiewicz", "+49 30 5550 1234"),
    ("\u202eevil", "Name\x07Bell", "+1 202 555 0102"),
    ("😀 Emoji", "Smith", "+1 202 555 0103"),
    ("A" * 200, "B" * 200, "+1 202 555 0104 ext. 42"),
    ("Иван", "Петров", "+7 495 555 0105"),
    ("李", "小龍", "+86 10 5555 0106"),
    ("", "", "+1 202 555 0107"),
]


def _log_in(port: int) -> tuple[bytes, bytes]:
    """Log in and return the session cookie and the session's CSRF token."""
    form = raw_request(port, b"GET", b"/login")
    login_cookie = form.header("Set-Cookie").split(";", 1)[0].encode()
    token = CSRF.search(form.body).group(1)
    body = b"password=" + quote(PASSWORD).encode() + b"&csrf_token=" + token + b"&next=/admin"
    response = raw_request(port, b"POST", b"/login", [
        (b"Cookie", login_cookie),
        (b"Content-Type", b"application/x-www-form-urlencoded")], body)
    assert response.status == 303
    session = next(value for key, value in response.headers
                   if key.lower() == "set-cookie" and value.startswith("phonebook_admin="))
    cookie = session.split(";", 1)[0].encode()
    page = raw_request(port, b"GET", b"/admin", [(b"Cookie", cookie)])
    return cookie, CSRF.search(page.body).group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    config = load_config(write_ini(folder / "config.ini", {
        "storage": {"data_dir": str(folder / "data")},
        "server": {"host": "127.0.0.1", "port": "0"},
        "admin": {"password_hash": hash_password(PASSWORD)},
        "phones": {"rate_limit_per_second": "100000", "rate_limit_burst": "100000"},
        "logging": {"dir": str(folder / "logs"), "format": "json"},
        "profiling": {"enabled": "yes", "max_profile_seconds": "1",
                      "sample_interval_ms": "50"},
    }))
    console = io.StringIO()
    logging_setup = setup_logging(config, console_stream=console)
    appliance = build_appliance(config)
    appliance.store.replace_source("import", [
        Contact("import", str(number), given_name=given, family_name=family,
                numbers=[PhoneNumber(number_text, "work")])
        for number, (given, family, number_text) in enumerate(HOSTILE_CONTACTS)])
    server = Server(appliance.wsgi, "127.0.0.1", 0, threads=4,
                    **adjustments_from_config(config))
    appliance.bind_port(server.port)
    appliance.start_threads()
    server.start_in_thread()
    wait_until(lambda: _answers(server.port))
    cookie, csrf = _log_in(server.port)
    _, token = appliance.tokens.create("fuzz phone")
    xsd = REFERENCE_DIR / "CiscoIPPhone.xsd"
    schema = CiscoSchema(xsd) if xsd.exists() else None
    try:
        yield Site(server.port, appliance, folder / "logs", console, cookie, csrf, token,
                   schema)
    finally:
        server.close()
        appliance.stop()
        logging_setup.close()


def _answers(port: int) -> bool:
    try:
        return raw_request(port, b"GET", b"/livez").status == 200
    except OSError:
        return False


def check_response(site: Site, path: bytes, response: RawResponse) -> None:
    """Assert the rules every answer keeps, whatever was sent."""
    text_path = path.decode("latin-1")
    is_health = text_path.split("?", 1)[0] in HEALTH_PATHS
    assert response.status < 500 or (is_health and response.status == 503), \
        (path, response.status, response.body[:300])
    assert b"Traceback" not in response.body
    for name, value in response.headers:
        assert name.lower() not in ("injected", "x-injected"), (path, name)
        if name.lower() == "set-cookie":
            assert not value.startswith("injected"), (path, value)
    content_type = response.header("Content-Type").lower()
    if "xml" in content_type:
        root = ElementTree.fromstring(response.body)
        if root.tag.startswith("CiscoIPPhone") and site.schema is not None:
            assert site.schema.validate(response.body) == [], (path, response.body[:500])
    elif "json" in content_type:
        json.loads(response.body)


def generated_by_waitress(response: RawResponse) -> bool:
    """Tell whether waitress answered on its own, as for a request it cannot parse,
    so the app and its middleware never saw it. Waitress signs such answers with
    its ident, which the appliance sets to ``phonebook``."""
    return response.body.endswith(b"(generated by phonebook)")


def build_query(params: list[tuple[bytes, bytes]]) -> bytes:
    return b"&".join(name + b"=" + value for name, value in params)


# -- phone routes ------------------------------------------------------------------------------

PHONE_PATHS = [b"/directory", b"/directory/", b"/directory/browse",
               b"/directory/search/name", b"/directory/search/number",
               b"/directory/search/keypad", b"/lookup"]
PHONE_PARAMS = [b"q", b"page", b"group", b"number", b"name", b"locale", b"token", b"x"]


@FUZZ
@given(path=st.sampled_from(PHONE_PATHS),
       params=st.lists(st.tuples(st.sampled_from(PHONE_PARAMS), query_value()), max_size=4),
       charset=st.sampled_from(ACCEPT_CHARSETS),
       model=st.sampled_from(MODELS),
       accept=st.sampled_from(ACCEPTS))
def test_fuzz_phone_routes(site, path, params, charset, model, accept):
    target = path + b"?" + build_query(params) if params else path
    response = site.request(b"GET", target, [
        (b"Accept-Charset", charset.encode()), (b"X-CiscoIPPhoneModelName", model.encode()),
        (b"Accept", accept.encode())])
    check_response(site, target, response)


@FUZZ
@given(path=st.sampled_from(PHONE_PATHS), value=text_values())
def test_fuzz_phone_search_text_every_script(site, path, value):
    target = path + b"?q=" + quote(value, safe="").encode() + b"&number=" + \
        quote(value, safe="").encode() + b"&group=" + quote(value[:3], safe="").encode()
    response = site.request(b"GET", target)
    check_response(site, target, response)


def test_phone_token_kept_through_fuzzed_query(site):
    target = f"/directory?token={site.token}&name=SEP001122334455".encode()
    response = site.request(b"GET", target)
    check_response(site, target, response)
    assert site.token.encode() in response.body


@FUZZ
@given(segments=st.lists(query_value(), min_size=1, max_size=4))
def test_fuzz_unknown_paths(site, segments):
    target = b"/" + b"/".join(segment.replace(b"?", b"") for segment in segments)
    response = site.request(b"GET", target)
    check_response(site, target, response)


# -- headers ----------------------------------------------------------------------------------

HEADER_NAMES = [b"X-Request-ID", b"Accept-Charset", b"X-CiscoIPPhoneModelName", b"User-Agent",
                b"Cookie", b"Accept", b"Accept-Language", b"Accept-Encoding",
                b"X-Forwarded-For", b"X-Forwarded-Proto", b"Authorization", b"Referer"]


@FUZZ
@given(name=st.sampled_from(HEADER_NAMES), value=header_value(),
       path=st.sampled_from(PHONE_PATHS + [b"/metrics", b"/health", b"/login", b"/admin"]))
def test_fuzz_header_values(site, name, value, path):
    response = site.request(b"GET", path, [(name, value)])
    check_response(site, path, response)
    if not generated_by_waitress(response):
        echoed = response.header("X-Request-ID")
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", echoed), echoed


@pytest.mark.parametrize("value", [
    b"abc\r\nX-Injected: 1", b"abc\nX-Injected: 1", b"abc\rX-Injected: 1",
    b"%0d%0aX-Injected:%201", b"abc\x00def", b"a" * 65, b"../../etc",
])
def test_request_id_injection_not_echoed(site, value):
    response = site.request(b"GET", b"/directory", [(b"X-Request-ID", value)])
    check_response(site, b"/directory", response)
    assert response.header("X-Request-ID").encode() != value


def test_header_over_limit_rejected(site):
    response = site.request(b"GET", b"/directory", [(b"X-Padding", b"y" * 17_000)])
    assert response.status == 431


# -- monitoring and admin routes --------------------------------------------------------------


@FEW
@given(path=st.sampled_from([b"/metrics", b"/health", b"/livez", b"/readyz"]),
       params=st.lists(st.tuples(st.sampled_from([b"verbose", b"x", b"format"]),
                                 query_value()), max_size=2),
       accept=st.sampled_from(ACCEPTS),
       encoding=st.sampled_from([b"gzip", b"identity", b"br", b"gzip;q=0", b"*", b"%%%"]))
def test_fuzz_monitoring_routes(site, path, params, accept, encoding):
    target = path + b"?" + build_query(params) if params else path
    response = site.request(b"GET", target, [(b"Accept", accept.encode()),
                                             (b"Accept-Encoding", encoding)])
    check_response(site, target, response)


ADMIN_GETS = [
    (b"/admin/preview", [b"model", b"path", b"input_url", b"field.q"]),
    (b"/admin/phone-config", [b"mac", b"token", b"name"]),
    (b"/setup", [b"notice"]),
    (b"/login", [b"next"]),
    (b"/admin", [b"x"]),
    (b"/admin/tokens", [b"x"]),
    (b"/debug/profile", [b"top", b"seconds"]),
]


@FUZZ
@given(data=st.data())
def test_fuzz_admin_pages(site, data):
    path, names = data.draw(st.sampled_from(ADMIN_GETS))
    params = data.draw(st.lists(st.tuples(st.sampled_from(names), query_value()), max_size=3))
    if path == b"/debug/profile":
        # A valid seconds value samples for that long; keep the run short.
        params = [(name, value) for name, value in params if name != b"seconds"]
        params.append((b"seconds", data.draw(st.sampled_from([b"0", b"x", b"-1", b"%FF"]))))
    target = path + b"?" + build_query(params) if params else path
    response = site.request(b"GET", target, admin=data.draw(st.booleans()))
    check_response(site, target, response)


@pytest.mark.parametrize("next_value", [
    b"/%0d%0aSet-Cookie:%20injected=1", b"/%0aX-Injected:%201", b"//evil.example/",
    b"http://evil.example/", b"/\\evil", b"%2F%2Fevil.example", b"/admin%00", b"javascript:1",
])
def test_login_redirect_target_cannot_inject(site, next_value):
    form = raw_request(site.port, b"GET", b"/login?next=" + next_value)
    check_response(site, b"/login", form)
    login_cookie = form.header("Set-Cookie").split(";", 1)[0].encode()
    token = CSRF.search(form.body).group(1)
    body = (b"password=" + quote(PASSWORD).encode() + b"&csrf_token=" + token +
            b"&next=" + next_value)
    response = raw_request(site.port, b"POST", b"/login", [
        (b"Cookie", login_cookie),
        (b"Content-Type", b"application/x-www-form-urlencoded")], body)
    check_response(site, b"/login", response)
    assert response.status == 303
    location = response.header("Location")
    assert location.startswith("/") or location.startswith("http://127.0.0.1")
    assert "evil" not in location


POSTS = [b"/login", b"/logout", b"/admin/tokens", b"/admin/tokens/1/revoke", b"/setup/sync",
         b"/setup/consent", b"/setup/redirect", b"/directory", b"/metrics", b"/nowhere"]
CONTENT_TYPES = [b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                 b"multipart/form-data", b"application/json", b"text/plain", b"", b";;;"]


@FUZZ
@given(path=st.sampled_from(POSTS), content_type=st.sampled_from(CONTENT_TYPES),
       fields=st.lists(st.tuples(st.sampled_from([b"name", b"csrf_token", b"password",
                                                  b"next", b"redirect_url", b"x"]),
                                 query_value()), max_size=4),
       raw=st.binary(max_size=200), use_csrf=st.booleans(), use_raw=st.booleans())
def test_fuzz_post_bodies(site, path, content_type, fields, raw, use_csrf, use_raw):
    if use_csrf:
        fields = [(b"csrf_token", site.csrf)] + fields
    body = raw if use_raw else build_query(fields)
    headers = [(b"Content-Type", content_type)] if content_type else []
    response = site.request(b"POST", path, headers, body, admin=True)
    check_response(site, path, response)


def test_post_body_over_limit_rejected(site):
    # Only the declared length is sent: waitress rejects on Content-Length alone,
    # and a client still writing 2 MiB may see the reset before the 413 arrives.
    response = site.request(b"POST", b"/admin/tokens",
                            [(b"Content-Type", b"application/x-www-form-urlencoded"),
                             (b"Content-Length", str(2 * 1024 * 1024).encode())],
                            admin=True)
    assert response.status == 413


@pytest.mark.parametrize("method", [b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE",
                                    b"BREW", b"get", b"G\x00T"])
def test_other_methods_never_fail(site, method):
    response = site.request(method, b"/directory")
    check_response(site, b"/directory", response)


def test_fuzzed_database_still_sound(site):
    connection = sqlite3.connect(site.appliance.store.path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        connection.close()


# -- the log after all of the above --------------------------------------------------------------


def test_fuzz_log_lines_stay_json(site):
    """Run last in this file: every line the fuzzed server logged is one JSON object."""
    site.appliance.tokens.flush()
    logging_files = [site.log_dir / name for name in (APP_LOG, ERRORS_LOG, ACCESS_LOG)]
    texts = [path.read_text(encoding="utf-8") for path in logging_files if path.exists()]
    texts.append(site.console.getvalue())
    lines = [line for text in texts for line in text.splitlines()]
    assert len(lines) > 100
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict)
        assert "message" in record


# -- import files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def import_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("import-fuzz")
    return load_config(write_ini(folder / "config.ini", {
        "storage": {"data_dir": str(folder / "data")}}))


def read_or_reject(path: Path, config) -> None:
    """Parse a file: it must give a result or ImportFileError with a message."""
    try:
        result = read_contact_file(path, config)
    except ImportFileError as error:
        assert str(error)
        return
    assert result.read >= len(result.contacts)


@FUZZ
@given(content=st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=2000).map(lambda text: text.encode("utf-8")),
    st.lists(st.lists(text_values(), max_size=6), max_size=8).map(
        lambda rows: "\n".join(",".join(row) for row in rows).encode("utf-8", "replace")),
))
def test_fuzz_import_any_bytes(import_config, tmp_path_factory, content):
    path = tmp_path_factory.mktemp("file") / "contacts.csv"
    path.write_bytes(content)
    read_or_reject(path, import_config)


@FUZZ
@given(name=st.sampled_from(sorted(path.name for path in DATA.iterdir())),
       cut=st.floats(min_value=0.0, max_value=1.0), garbage=st.binary(max_size=30))
def test_fuzz_import_truncated_files(import_config, tmp_path_factory, name, cut, garbage):
    content = (DATA / name).read_bytes()
    truncated = content[:int(len(content) * cut)] + garbage
    path = tmp_path_factory.mktemp("file") / name
    path.write_bytes(truncated)
    read_or_reject(path, import_config)


@FEW
@given(cut=st.floats(min_value=0.0, max_value=1.0))
def test_fuzz_truncated_import_leaves_store_whole(import_config, tmp_path_factory, cut):
    folder = tmp_path_factory.mktemp("store")
    store = Store.open(folder / "data")
    try:
        full = folder / "full.csv"
        full.write_bytes((DATA / "google-current.csv").read_bytes())
        assert run_import(store, import_config, full, out=io.StringIO(),
                          err=io.StringIO()) == 0
        before = {contact.source_id for contact in store.load_contacts()}
        content = full.read_bytes()
        cut_file = folder / "cut.csv"
        cut_file.write_bytes(content[:int(len(content) * cut)])
        status = run_import(store, import_config, cut_file, out=io.StringIO(),
                            err=io.StringIO())
        after = {contact.source_id for contact in store.load_contacts()}
        if status != 0:
            assert after == before
        assert store.integrity_check(quick=False) == "ok"
    finally:
        store.close()


def test_import_50_mb_binary_rejected_fast(import_config, tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(os.urandom(50 * 1024 * 1024))
    started = time.monotonic()
    with pytest.raises(ImportFileError):
        read_contact_file(path, import_config)
    assert time.monotonic() - started < 5


def test_import_50_mb_csv_stops_at_entry_limit(import_config, tmp_path):
    path = tmp_path / "huge.csv"
    row_count = 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("First Name,Last Name,Labels,Phone 1 - Label,Phone 1 - Value\n")
        while handle.tell() < 50 * 1024 * 1024:
            handle.write(f"Given{row_count},Family,* myContacts,Work,+1 202 555 0100\n" * 1000)
            row_count += 1000
    with pytest.raises(ImportFileError) as raised:
        read_contact_file(path, import_config)
    assert "more than 100000 entries" in str(raised.value)


# -- the config file -----------------------------------------------------------------------------

WRONG_VALUES = ["ten", "-1", "1.5", "", " ", "yes", "maybe", "99999999999999999999", "😀",
                "0x10", "[1, 2]", "300.300.300.300/99", "http//x", "ftp://x", "\t",
                "1e400", "nan", "-0", "%(x)s", "${HOME}", "a" * 5000]


def write_setting(folder: Path, section: str, key: str, value: str) -> Path:
    path = folder / "config.ini"
    path.write_text(f"[{section}]\n{key} = {value}\n", encoding="utf-8")
    return path


def load_or_explain(path: Path, section: str, key: str, value: str, secret: bool) -> None:
    """Load a config: it must load or raise ConfigError naming the key and section."""
    try:
        load_config(path)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message
        if f"[{section}]" in message and key in message:
            if secret and value.strip() and len(value.strip()) > 3:
                assert value.strip() not in message
            return
        # A value that breaks the ini syntax is reported for the file as a whole.
        assert "not a valid ini file" in message or "cannot be read" in message, message


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: f"{setting.section}.{setting.key}")
def test_config_every_key_wrong_values(tmp_path, setting):
    for value in WRONG_VALUES:
        path = write_setting(tmp_path, setting.section, setting.key, value)
        load_or_explain(path, setting.section, setting.key, value, setting.secret)


@FUZZ
@given(setting=st.sampled_from(SETTINGS), value=st.one_of(
    text_values().filter(lambda text: "\n" not in text and "\r" not in text),
    st.integers().map(str), st.floats().map(str)))
def test_fuzz_config_values(tmp_path_factory, setting, value):
    path = write_setting(tmp_path_factory.mktemp("config"), setting.section, setting.key,
                         value)
    load_or_explain(path, setting.section, setting.key, value, setting.secret)


@FUZZ
@given(content=st.one_of(st.binary(max_size=500),
                         st.text(max_size=500).map(lambda text: text.encode("utf-8"))))
def test_fuzz_config_file_bytes(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("config") / "config.ini"
    path.write_bytes(content)
    try:
        load_config(path)
    except ConfigError as error:
        assert str(error)

