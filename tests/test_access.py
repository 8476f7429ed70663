"""Access control: network allow lists, rate limit, phone tokens, proxies and limits."""

from __future__ import annotations

import ipaddress
import socket
import time
from xml.etree import ElementTree

import bottle
import pytest
import requests

from appliance.model import Contact, PhoneNumber
from appliance.web.access import (
    ADMIN,
    HEALTH,
    OWN_RULES,
    PHONE,
    RateLimiter,
    classify_path,
    is_allowed,
    is_parsable_content_type,
    parse_client_address,
    rate_limit_key,
    repair_header_values,
    split_token,
)
from conftest import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add_echo_route(running) -> None:
    """Add a route that shows what the app behind the access layer receives."""

    @running.appliance.bottle_app.get("/echo")
    def echo():
        environ = bottle.request.environ
        return "|".join([environ.get("QUERY_STRING", ""),
                         environ.get("appliance.phone_token", ""),
                         environ.get("REMOTE_ADDR", "")])


def phone_text(response) -> str:
    root = ElementTree.fromstring(response.content)
    assert root.tag == "CiscoIPPhoneText"
    return root.findtext("Text")


# -- units --------------------------------------------------------------------


@pytest.mark.parametrize("path, family", [
    ("/directory", PHONE),
    ("/directory/browse/A", PHONE),
    ("/lookup", PHONE),
    ("/", PHONE),
    ("/no/such/page", PHONE),
    ("/metricsx", PHONE),
    ("/metrics", OWN_RULES),
    ("/health", HEALTH),
    ("/livez", HEALTH),
    ("/readyz", HEALTH),
    ("/setup", ADMIN),
    ("/setup/callback", ADMIN),
    ("/admin/tokens", ADMIN),
    ("/login", ADMIN),
    ("/debug/profile", ADMIN),
    ("/administrator", PHONE),
])
def test_classify_path_families(path, family):
    assert classify_path(path) == family


@pytest.mark.parametrize("text, expected", [
    ("192.168.1.20", "192.168.1.20"),
    ("::1", "::1"),
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("fe80::1%eth0", "fe80::1"),
    ("", None),
    (None, None),
    ("not-an-address", None),
    ("10.0.0.256", None),
])
def test_parse_client_address_forms(text, expected):
    address = parse_client_address(text)
    assert (str(address) if address is not None else None) == expected


@pytest.mark.parametrize("address, allowed", [
    ("127.0.0.1", True),
    ("10.20.30.40", True),
    ("172.31.255.1", True),
    ("172.32.0.1", False),
    ("192.168.200.7", True),
    ("8.8.8.8", False),
    ("::1", True),
    ("fd12:3456::1", True),
    ("2001:db8::1", False),
])
def test_default_allow_private_ranges(make_config, address, allowed):
    networks = make_config().phones.allow
    assert is_allowed(ipaddress.ip_address(address), networks) is allowed


def test_is_allowed_rejects_unknown_address():
    assert is_allowed(None, (ipaddress.ip_network("0.0.0.0/0"),)) is False


def test_rate_limit_key_groups_ipv6_by_64():
    first = rate_limit_key(ipaddress.ip_address("2001:db8:1:2::10"))
    second = rate_limit_key(ipaddress.ip_address("2001:db8:1:2:ffff::1"))
    assert first == second
    assert rate_limit_key(ipaddress.ip_address("10.0.0.1")) == "10.0.0.1"


def test_rate_limiter_allows_burst_then_waits():
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)


def test_rate_limiter_refills_over_time():
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("a")
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_rate_limiter_keeps_clients_apart():
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=FakeClock())
    assert limiter.take("a") == 0.0
    assert limiter.take("b") == 0.0
    assert limiter.take("a") > 0


def test_rate_limiter_zero_rate_is_off():
    limiter = RateLimiter(rate_per_s=0.0, burst=1, clock=FakeClock())
    assert all(limiter.take("a") == 0.0 for _ in range(100))


def test_rate_limiter_bounds_tracked_clients():
    limiter = RateLimiter(rate_per_s=1.0, burst=1, max_clients=10, clock=FakeClock())
    for number in range(50):
        limiter.take(f"client-{number}")
    assert len(limiter._buckets) == 10


@pytest.mark.parametrize("query, token, rest", [
    ("token=abc", "abc", ""),
    ("name=SEP001122334455&token=abc&locale=x", "abc", "name=SEP001122334455&locale=x"),
    ("token=first&token=second", "first", ""),
    ("page=2", "", "page=2"),
    ("", "", ""),
    ("token=", "", ""),
    ("q=Ren%E9e&token=abc&page=2", "abc", "q=Ren%E9e&page=2"),
    ("q=a+b;token=abc", "abc", "q=a+b"),
    ("token=a%2Db", "a-b", ""),
])
def test_split_token_removes_token(query, token, rest):
    assert split_token(query) == (token, rest)


# -- through a real server ----------------------------------------------------


def test_phone_outside_allow_gets_403(serve):
    running = serve(phones={"allow": "10.0.0.0/8"})
    response = running.get("/directory")
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/xml")
    assert "may not use the directory" in phone_text(response)


def test_phone_refusal_answers_json_clients(serve):
    running = serve(phones={"allow": "10.0.0.0/8"})
    response = running.get("/lookup?number=1", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.json()["ok"] is False
    assert response.json()["status"] == 403


def test_admin_outside_allow_gets_403(serve):
    running = serve(admin={"allow": "10.0.0.0/8"})
    response = running.get("/setup")
    assert response.status_code == 403
    assert "admin pages" in response.text


@pytest.mark.parametrize("path", ["/livez", "/metrics"])
def test_health_and_metrics_skip_phone_allow(serve, path):
    running = serve(phones={"allow": "10.0.0.0/8"})
    assert running.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/livez", "/readyz"])
def test_health_outside_allow_gets_403(serve, path):
    running = serve(health={"allow": "10.0.0.0/8"})
    response = running.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.json()["ok"] is False


def test_health_page_shows_no_contact_data(serve):
    running = serve()
    contacts = running.appliance.store.load_contacts()
    assert contacts
    page = running.get("/health", headers={"Accept": "text/html"}).text
    for contact in contacts:
        for text in (contact.given_name, contact.family_name, contact.display_name):
            if len(text) > 3:
                assert text not in page, text
        for number in contact.numbers:
            assert number.raw not in page, number.raw


def test_forwarded_for_ignored_without_trusted_proxy(serve):
    running = serve(phones={"allow": "10.0.0.0/8"})
    response = running.get("/directory", headers={"X-Forwarded-For": "10.1.2.3"})
    assert response.status_code == 403


def test_forwarded_for_cannot_claim_denied_address(serve):
    running = serve()
    add_echo_route(running)
    response = running.get("/echo", headers={"X-Forwarded-For": "8.8.8.8"})
    assert response.status_code == 200
    assert response.text.endswith("|127.0.0.1")


@pytest.mark.parametrize("forwarded, status", [
    ("10.1.2.3", 200),
    ("8.8.8.8", 403),
    ("8.8.8.8, 10.1.2.3", 200),
])
def test_trusted_proxy_sets_client_address(serve, forwarded, status):
    running = serve(server={"trusted_proxy": "127.0.0.1"}, phones={"allow": "10.0.0.0/8"})
    add_echo_route(running)
    response = running.get("/echo", headers={"X-Forwarded-For": forwarded})
    assert response.status_code == status


def test_rate_limit_answers_429_with_retry_after(serve):
    running = serve(phones={"rate_limit_per_second": "0.01", "rate_limit_burst": "4"})
    # The fixture's readiness request took the first of the four.
    statuses = [running.get("/directory").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = running.get("/directory")
    assert int(response.headers["Retry-After"]) >= 1
    assert "Too many requests" in phone_text(response)


def test_token_required_refuses_missing_token(serve):
    running = serve(phones={"require_token": "yes"})
    response = running.get("/directory")
    assert response.status_code == 403
    assert "token" in phone_text(response)


def test_token_required_accepts_live_token(serve):
    running = serve(phones={"require_token": "yes"})
    _, token = running.appliance.tokens.create("Desk 12")
    add_echo_route(running)
    response = running.get(f"/echo?name=SEP001122334455&token={token}")
    assert response.status_code == 200
    query, carried, _ = response.text.split("|")
    assert query == "name=SEP001122334455"
    assert carried == token


def test_token_required_refuses_revoked_token(serve):
    running = serve(phones={"require_token": "yes"})
    record, token = running.appliance.tokens.create("Desk 12")
    assert running.get(f"/directory?token={token}").status_code == 200
    running.appliance.tokens.revoke(record.id)
    assert running.get(f"/directory?token={token}").status_code == 403


def test_token_required_refuses_unknown_token(serve):
    running = serve(phones={"require_token": "yes"})
    running.appliance.tokens.create("Desk 12")
    assert running.get("/directory?token=guessed-token-value").status_code == 403


def test_token_optional_drops_bad_token(serve):
    running = serve()
    add_echo_route(running)
    response = running.get("/echo?token=guessed&page=2")
    assert response.status_code == 200
    assert response.text.split("|")[:2] == ["page=2", ""]


def test_token_use_recorded_with_client(serve):
    running = serve(phones={"require_token": "yes"})
    record, token = running.appliance.tokens.create("Desk 12")
    for _ in range(3):
        running.get(f"/directory?token={token}")
    running.appliance.tokens.flush()
    stored = running.appliance.tokens.get(record.id)
    assert stored.uses == 3
    assert stored.last_client == "127.0.0.1"
    uses = running.appliance.tokens.recent_uses(record.id)
    assert [(client, count) for _, client, count, _ in uses] == [("127.0.0.1", 3)]


def test_token_refusal_log_hides_token(serve, caplog):
    running = serve(phones={"require_token": "yes"})
    running.get("/directory?token=secret-looking-value")
    assert "phone token refused" in caplog.text
    assert "secret-looking-value" not in caplog.text


def test_body_over_limit_gets_413(serve):
    running = serve(server={"max_request_body_bytes": "2048"})
    response = running.session.post(running.base_url + "/directory", data=b"x" * 4096,
                                     timeout=10)
    assert response.status_code == 413


def test_headers_over_limit_get_431(serve):
    running = serve(server={"max_request_header_bytes": "2048"})
    response = running.get("/directory", headers={"X-Padding": "y" * 4096})
    assert response.status_code == 431


def test_idle_connection_closed_after_timeout(serve):
    running = serve(server={"channel_timeout_seconds": "1"})
    connection = socket.create_connection(("127.0.0.1", running.server.port), timeout=10)
    try:
        started = time.monotonic()
        assert connection.recv(1) == b""  # the server closed the idle connection
        assert time.monotonic() - started < 5
    finally:
        connection.close()


def test_connection_limit_holds_new_clients(serve):
    running = serve(server={"connection_limit": "10"})
    running.session.close()  # its kept-alive connection would bypass the limit
    idle = [socket.create_connection(("127.0.0.1", running.server.port)) for _ in range(10)]
    try:
        with pytest.raises(requests.Timeout):
            requests.get(running.base_url + "/directory", timeout=1)
        for connection in idle:
            connection.close()
        wait_until(lambda: _status_or_none(running) == 200)
    finally:
        for connection in idle:
            connection.close()


def _status_or_none(running) -> int | None:
    try:
        return requests.get(running.base_url + "/directory", timeout=1).status_code
    except requests.RequestException:
        return None


def test_token_carried_on_every_link(serve):
    running = serve(phones={"require_token": "yes"})
    _, token = running.appliance.tokens.create("Desk 12")
    for path in ("/directory", "/directory/browse", "/directory/search/name"):
        response = running.get(f"{path}?token={token}")
        assert response.status_code == 200, path
        root = ElementTree.fromstring(response.content)
        urls = [element.text for element in root.iter("URL")]
        assert urls, path
        for url in urls:
            if url.startswith("http"):
                assert f"token={token}" in url, url
                assert running.get(url.replace(running.appliance.base_url, "")).status_code \
                    == 200, url


@pytest.mark.parametrize("raw, expected", [
    (b"plain", b"plain"),
    ("Renée".encode("utf-8"), "Renée".encode("utf-8")),
    (b"\x80abc", "\ufffdabc".encode("utf-8")),
    (b"caf\xe9", "caf\ufffd".encode("utf-8")),
])
def test_repair_header_values_keeps_utf8(raw, expected):
    environ = {"HTTP_ACCEPT": raw.decode("latin-1"), "PATH_INFO": "/x\xe9"}
    repair_header_values(environ)
    assert environ["HTTP_ACCEPT"].encode("latin-1") == expected
    assert environ["PATH_INFO"] == "/x\xe9"


@pytest.mark.parametrize("content_type, parsable", [
    ("", True),
    ("application/x-www-form-urlencoded", True),
    ("multipart/form-data; boundary=x", True),
    ('multipart/form-data; boundary="a;b"', True),
    (";;;", False),
    ("text/plain; charset", False),
])
def test_content_type_parsable_by_bottle(content_type, parsable):
    assert is_parsable_content_type(content_type) is parsable


def test_malformed_content_type_gets_400(serve):
    running = serve()
    response = running.session.post(running.base_url + "/login", data=b"x=1", timeout=10,
                                     headers={"Content-Type": "text/plain; charset"})
    assert response.status_code == 400
    assert "Content-Type" in response.text


def test_non_utf8_header_does_not_fail_route(serve):
    running = serve()
    response = running.get("/health", headers={"Accept": b"\x80"})
    assert response.status_code in (200, 503)


def test_token_keeps_latin1_search_bytes(serve):
    running = serve(phones={"require_token": "yes"})
    running.appliance.store.replace_source("import", [Contact(
        "import", "1", given_name="Renée", family_name="Zylberstein",
        numbers=[PhoneNumber("+1 202 555 0101")])])
    _, token = running.appliance.tokens.create("Desk 12")
    response = running.get(f"/directory/search/name?q=Ren%E9e&token={token}",
                           headers={"Accept-Charset": "iso-8859-1"})
    assert response.status_code == 200
    assert "Zylberstein" in response.content.decode("iso-8859-1")
