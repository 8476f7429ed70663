"""Admin pages: status, phone tokens, phone preview and the phone config generator."""

from __future__ import annotations

import json
import logging
import re
import time
from xml.etree import ElementTree

import pytest

from appliance.model import Contact, PhoneNumber
from appliance.sources.google import runs
from appliance.sources.google.sync import ContactChange
from appliance.web.admin import read_recent_errors
from appliance.web.admin_auth import hash_password
from appliance.web.phone_tools import over_limit, parse_mac, parse_target, render_config_lines

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    return CSRF.search(page).group(1)


@pytest.fixture
def admin_site(serve, tmp_path):
    """Serve an appliance with an admin password; log in and return it."""

    def start(**sections):
        sections.setdefault("admin", {})["password_hash"] = PASSWORD_HASH
        sections.setdefault("logging", {}).setdefault("dir", str(tmp_path / "logs"))
        sections.setdefault("server", {})["public_base_url"] = "http://192.168.1.10:8080"
        running = serve(**sections)
        form = running.get("/login?next=/admin")
        response = running.session.post(
            running.base_url + "/login", allow_redirects=False, timeout=10,
            data={"password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/admin"})
        assert response.status_code == 303
        return running

    return start


def post(running, path: str, page: str, **fields):
    token = csrf_of(running.get(page).text)
    return running.session.post(running.base_url + path, data={"csrf_token": token, **fields},
                                allow_redirects=False, timeout=10)


def add_contacts(running, contacts: list[Contact]) -> None:
    running.appliance.store.replace_source("import", contacts)


# -- login and headers -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin", "/admin/tokens", "/admin/preview",
                                  "/admin/phone-config"])
def test_admin_pages_need_login(serve, path):
    running = serve(admin={"password_hash": PASSWORD_HASH})
    response = running.get(path, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/login?next={path}")


def test_admin_pages_send_security_headers(admin_site):
    response = admin_site().get("/admin")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


# -- status -------------------------------------------------------------------------


def test_status_shows_contacts_and_phone_url(admin_site):
    running = admin_site()
    add_contacts(running, [Contact("import", "1", given_name="Ada", family_name="Lovelace",
                                   numbers=[PhoneNumber("+1 202 555 0101")])])
    page = running.get("/admin").text
    assert "<td>import</td><td>1</td>" in page
    assert "http://192.168.1.10:8080/directory" in page


def test_status_shows_sync_change_report(admin_site):
    running = admin_site()
    store = running.appliance.store
    started = time.time()
    runs.record_start(store, "run-1", "full", started)
    with store.write() as connection:
        runs.record_finish(connection, "run-1", "full", started + 2, "ok",
                           {"added": 2, "updated": 1, "deleted": 0})
        runs.record_changes(connection, "run-1", {
            "added": [ContactChange("people/1", "Ada Lovelace"),
                      ContactChange("people/2", "Tom & Jerry")],
            "updated": [ContactChange("people/3", "Grace Hopper")], "deleted": []})
    page = running.get("/admin").text
    assert "+2 ~1 -0" in page
    assert "Ada Lovelace" in page
    assert "Tom &amp; Jerry" in page
    assert "~ Grace Hopper" in page


def test_status_shows_last_errors(admin_site, tmp_path):
    running = admin_site()
    running.appliance.store.set_state("sync.last_error", "Google answered 503 <again>")
    (tmp_path / "logs").mkdir(exist_ok=True)
    record = {"timestamp": "2026-12-04T10:00:00Z", "level": "ERROR", "logger": "appliance.sync",
              "message": "sync failed", "error": "quota exceeded", "run_id": "abc123"}
    (tmp_path / "logs" / "errors.log").write_text(json.dumps(record) + "\n")
    page = running.get("/admin").text
    assert "Google answered 503 &lt;again&gt;" in page
    assert "quota exceeded" in page
    assert "abc123" in page


def test_recent_errors_newest_first(tmp_path):
    lines = [json.dumps({"message": f"error {number}"}) for number in range(15)]
    (tmp_path / "errors.log").write_text("\n".join(lines) + "\nnot json\n")
    records = read_recent_errors(tmp_path, limit=3)
    assert [record["message"] for record in records] == ["not json", "error 14", "error 13"]


def test_recent_errors_missing_file_empty(tmp_path):
    assert read_recent_errors(tmp_path / "nowhere") == []


# -- phone tokens ---------------------------------------------------------------------


def test_token_created_shown_once(admin_site):
    running = admin_site()
    response = post(running, "/admin/tokens", "/admin/tokens", name="Desk 12")
    assert response.status_code == 200
    token = re.search(r"<code>([A-Za-z0-9_-]{24})</code>", response.text).group(1)
    assert f"http://192.168.1.10:8080/directory?token={token}" in response.text
    assert token not in running.get("/admin/tokens").text
    assert running.appliance.tokens.check(token)[1] == "ok"


def test_token_revoked_from_page(admin_site):
    running = admin_site()
    record, token = running.appliance.tokens.create("Desk 12")
    response = post(running, f"/admin/tokens/{record.id}/revoke", "/admin/tokens")
    assert response.status_code == 303
    assert running.appliance.tokens.check(token) == (None, "revoked")
    assert "revoked" in running.get("/admin/tokens").text


def test_token_form_without_csrf_refused(admin_site):
    running = admin_site()
    response = running.session.post(running.base_url + "/admin/tokens",
                                     data={"name": "Desk 12", "csrf_token": "forged"},
                                     allow_redirects=False, timeout=10)
    assert response.status_code == 403
    assert running.appliance.tokens.list() == []


@pytest.mark.parametrize("token_id", ["99", "99999999999999999999999", "-1"])
def test_token_revoke_unknown_gives_404(admin_site, token_id):
    running = admin_site()
    response = post(running, f"/admin/tokens/{token_id}/revoke", "/admin/tokens")
    assert response.status_code == 404


def test_token_empty_name_explained(admin_site):
    running = admin_site()
    response = post(running, "/admin/tokens", "/admin/tokens", name="   ")
    assert response.status_code == 400
    assert "needs a name" in response.text


def test_token_control_characters_rejected(admin_site):
    running = admin_site()
    response = post(running, "/admin/tokens", "/admin/tokens", name="evil\nname\x1b[31m")
    assert response.status_code == 400
    assert "control characters" in response.text
    assert running.appliance.tokens.list() == []


def test_token_actions_logged_with_client(admin_site, caplog):
    running = admin_site()
    with caplog.at_level(logging.INFO, logger="appliance.tokens"):
        post(running, "/admin/tokens", "/admin/tokens", name="Desk 12")
        post(running, "/admin/tokens/1/revoke", "/admin/tokens")
    records = [record for record in caplog.records if record.name == "appliance.tokens"]
    assert [record.getMessage() for record in records] == ["phone token created",
                                                           "phone token revoked"]
    assert all(record.client == "127.0.0.1" for record in records)


# -- phone preview --------------------------------------------------------------------------


def test_preview_latin1_phone_gets_latin1(admin_site):
    running = admin_site()
    add_contacts(running, [Contact("import", "1", given_name="Renée", family_name="Müller",
                                   numbers=[PhoneNumber("+1 202 555 0101", "work")])])
    page = running.get("/admin/preview", params={
        "model": "7940", "path": "/directory/search/name?q=Ren"}).text
    assert "text/xml; charset=iso-8859-1" in page
    assert "Renée Müller" in page
    assert "Every text is within its Cisco limit." in page


def test_preview_links_follow_as_phone(admin_site):
    running = admin_site()
    page = running.get("/admin/preview", params={"model": "8845"}).text
    assert "CiscoIPPhoneMenu" in page
    assert "/admin/preview?model=8845&amp;path=http%3A%2F%2F192.168.1.10%3A8080%2Fdirectory" in page


def test_preview_input_form_submits_search(admin_site):
    running = admin_site()
    add_contacts(running, [Contact("import", "1", given_name="Ada", family_name="Lovelace",
                                   numbers=[PhoneNumber("+1 202 555 0101")])])
    form_page = running.get("/admin/preview", params={
        "model": "7970", "path": "/directory/search/name"}).text
    assert "Submit as the phone" in form_page
    input_url = re.search(r'name="input_url" value="([^"]+)"', form_page).group(1)
    field = re.search(r'name="(field\.[^"]+)"', form_page).group(1)
    page = running.get("/admin/preview", params={
        "model": "7970", "input_url": input_url.replace("&amp;", "&"), field: "Lov"}).text
    assert "Ada Lovelace" in page


@pytest.mark.parametrize("path", ["/admin", "/metrics", "http://example.com/directory",
                                  "//example.com/directory"])
def test_preview_rejects_other_paths(admin_site, path):
    response = admin_site().get("/admin/preview", params={"path": path})
    assert response.status_code == 400
    assert "Cannot preview" in response.text


@pytest.mark.parametrize("text, expected", [
    ("", ("/directory", "")),
    ("/directory/browse?group=A", ("/directory/browse", "group=A")),
    ("http://192.168.1.10:8080/directory/search/name?q=x&page=2",
     ("/directory/search/name", "q=x&page=2")),
    ("/lookup?number=5550101", ("/lookup", "number=5550101")),
])
def test_parse_target_accepts_phone_pages(text, expected):
    assert parse_target(text, "http://192.168.1.10:8080") == expected


def test_over_limit_reports_long_texts():
    root = ElementTree.fromstring(
        "<CiscoIPPhoneDirectory><Title>" + "T" * 33 + "</Title><DirectoryEntry><Name>"
        + "N" * 40 + "</Name><Telephone>1</Telephone></DirectoryEntry></CiscoIPPhoneDirectory>")
    assert over_limit(root) == [("Title", 33, 32), ("DirectoryEntry/Name", 40, 32)]


# -- phone config ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["00:11:22:33:44:aa", "0011.2233.44AA", "SEP001122334 4AA",
                                  "00-11-22-33-44-AA"])
def test_parse_mac_forms(text):
    assert parse_mac(text) == "0011223344AA"


@pytest.mark.parametrize("text", ["", "0011223344", "00112233445G", "SEP"])
def test_parse_mac_rejects_bad(text):
    with pytest.raises(ValueError):
        parse_mac(text)


def test_config_lines_for_each_family():
    blocks = render_config_lines("http://192.168.1.10:8080", "Staff & Co", "0011223344AA",
                                 "Tok_en-123")
    cnf, mpp, sip = blocks
    assert cnf[1] == "SEP0011223344AA.cnf.xml"
    assert ("<directoryURL>http://192.168.1.10:8080/directory?token=Tok_en-123</directoryURL>"
            in cnf[2])
    assert "<XML_Directory_Service_Name>Staff &amp; Co</XML_Directory_Service_Name>" in mpp[2]
    assert ("<XML_Directory_Service_URL>http://192.168.1.10:8080/directory?token=Tok_en-123"
            "</XML_Directory_Service_URL>") in mpp[2]
    assert sip[2] == 'directory_url: "http://192.168.1.10:8080/directory?token=Tok_en-123"'


def test_config_page_with_mac(admin_site):
    page = admin_site().get("/admin/phone-config", params={"mac": "00:11:22:33:44:aa"}).text
    assert "SEP0011223344AA.cnf.xml" in page
    assert "&lt;directoryURL&gt;http://192.168.1.10:8080/directory&lt;/directoryURL&gt;" in page
    assert "directory_url: &quot;http://192.168.1.10:8080/directory&quot;" in page


@pytest.mark.parametrize("params, message", [
    ({"mac": "nonsense"}, "Invalid MAC address"),
    ({"token": "bad token!"}, "Invalid token"),
])
def test_config_page_rejects_bad_input(admin_site, params, message):
    response = admin_site().get("/admin/phone-config", params=params)
    assert response.status_code == 400
    assert message in response.text


@pytest.mark.parametrize("path, page, message", [
    ("/setup/sync", "/setup", "sync requested by admin"),
    ("/logout", "/admin", "admin logged out"),
])
def test_admin_action_logged_with_client(admin_site, caplog, path, page, message):
    running = admin_site()
    with caplog.at_level(logging.INFO, logger="appliance.web"):
        response = post(running, path, page)
    assert response.status_code == 303
    records = [record for record in caplog.records if record.getMessage() == message]
    assert len(records) == 1
    assert records[0].client == "127.0.0.1"
