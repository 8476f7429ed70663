"""The /setup page and admin login, served by waitress against the fake Google."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from appliance import cli
from appliance.sources.google.scheduler import THREAD_NAME
from appliance.web.admin_auth import (
    MAX_FAILURES,
    hash_password,
    hash_password_pbkdf2,
    verify_password,
)
from tests.conftest import wait_until
from tests.google_fixtures import fake_google, google_config  # noqa: F401

PASSWORD = "correct horse battery"
PASSWORD_HASH = hash_password(PASSWORD)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    match = CSRF.search(page)
    assert match is not None
    return match.group(1)


def login(running, password: str = PASSWORD, next_path: str = "/setup") -> requests.Response:
    form = running.get(f"/login?next={next_path}")
    return running.session.post(running.base_url + "/login", allow_redirects=False, timeout=10,
                                data={"password": password, "csrf_token": csrf_of(form.text),
                                      "next": next_path})


def post_form(running, path: str, **fields) -> requests.Response:
    token = csrf_of(running.get("/setup").text)
    return running.session.post(running.base_url + path, data={"csrf_token": token, **fields},
                                allow_redirects=False, timeout=10)


@pytest.fixture
def setup_site(serve, google_config, fake_google, tmp_path):
    """Serve an appliance on the fake Google, with an admin password and OAuth client."""

    def start(authorise: bool = True, password_hash: str = PASSWORD_HASH, **google):
        config = google_config(
            authorise=authorise, client_secrets=str(fake_google.client_file(tmp_path)),
            sections={"admin": {"password_hash": password_hash} if password_hash else {},
                      "server": {"port": "0"}},
            **google)
        return serve(config=config)

    return start


def test_setup_without_password_explains_hash(setup_site):
    running = setup_site(password_hash="")
    response = running.get("/setup")
    assert response.status_code == 403
    assert "hash-password" in response.text
    assert "Start Google authorisation" not in response.text


def test_setup_redirects_to_login(setup_site):
    running = setup_site()
    response = running.get("/setup", allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login?next=/setup")


def test_login_wrong_password_is_refused(setup_site):
    running = setup_site()
    response = login(running, password="wrong password")
    assert response.status_code == 401
    assert "Wrong password" in response.text


def test_login_cookie_is_httponly_strict(setup_site):
    running = setup_site()
    response = login(running)
    cookie = response.headers["Set-Cookie"].lower()
    assert response.status_code == 303
    assert "phonebook_admin=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


def test_login_without_form_token_is_refused(setup_site):
    running = setup_site()
    response = running.session.post(running.base_url + "/login", timeout=10,
                                    data={"password": PASSWORD})
    assert response.status_code == 403


def test_login_locks_out_after_failures(setup_site):
    running = setup_site()
    for _ in range(MAX_FAILURES):
        login(running, password="wrong password")
    response = login(running)
    assert response.status_code == 429


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_login_next_stays_on_site(setup_site, target):
    running = setup_site()
    response = login(running, next_path=target)
    assert response.headers["Location"].endswith("/setup")


def test_setup_post_without_csrf_is_refused(setup_site):
    running = setup_site()
    login(running)
    response = running.session.post(running.base_url + "/setup/sync", timeout=10,
                                    data={"csrf_token": "forged"}, allow_redirects=False)
    assert response.status_code == 403


def test_logout_ends_session(setup_site):
    running = setup_site()
    login(running)
    post_form(running, "/logout")
    response = running.get("/setup", allow_redirects=False)
    assert response.status_code == 303


def test_setup_consent_through_page(setup_site, fake_google):
    running = setup_site(authorise=False)
    login(running)
    page = post_form(running, "/setup/consent").text
    link = re.search(r'<a href="([^"]+)" target="_blank"', page).group(1).replace("&amp;", "&")
    redirect = requests.get(link, allow_redirects=False, timeout=5).headers["Location"]
    token = csrf_of(page)
    response = running.session.post(running.base_url + "/setup/redirect", timeout=10,
                                    data={"csrf_token": token, "redirect_url": redirect},
                                    allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/setup?notice=authorised")
    store = running.appliance.store
    wait_until(lambda: store.get_state("google.authorisation") == "ok"
               and store.get_state("sync.last_success_at") is not None)


def test_setup_rejects_garbage_redirect(setup_site):
    running = setup_site(authorise=False)
    login(running)
    post_form(running, "/setup/consent")
    response = post_form(running, "/setup/redirect", redirect_url="http://127.0.0.1:1/?x=1")
    assert response.status_code == 200
    assert "no code= part" in response.text


def test_setup_invalid_grant_keeps_directory_serving(setup_site, fake_google):
    for index in range(40):
        fake_google._add_generated("connections", index)
    running = setup_site()
    store = running.appliance.store
    login(running)
    post_form(running, "/setup/sync")
    wait_until(lambda: store.count_by_source().get("google") == 40)

    fake_google.revoke_refresh_tokens()
    fake_google.expire_access_tokens()
    response = post_form(running, "/setup/sync")
    wait_until(lambda: store.get_state("google.authorisation") == "needed")

    page = running.get("/setup").text
    assert response.status_code == 303
    assert "authorisation needed" in page
    assert "invalid_grant" in page
    assert running.get("/directory").status_code == 200
    assert store.count_by_source().get("google") == 40


def test_scheduler_thread_registered_when_configured(setup_site):
    running = setup_site()
    names = [worker.name for worker in running.appliance.threads]
    assert THREAD_NAME in names
    assert running.appliance.sync_scheduler.is_alive()


def test_scheduler_absent_without_google(serve):
    running = serve()
    names = [worker.name for worker in running.appliance.threads]
    assert THREAD_NAME not in names
    assert running.appliance.store.get_state("google.authorisation") == "not_configured"


def test_oauth_client_without_credentials_needs_authorisation(setup_site):
    running = setup_site(authorise=False)
    assert running.appliance.store.get_state("google.authorisation") == "needed"


def test_scheduler_stop_ends_thread(setup_site):
    running = setup_site()
    scheduler = running.appliance.sync_scheduler
    scheduler.stop()
    assert not scheduler.is_alive()


@pytest.mark.parametrize("encoded", [
    "", "scrypt$1$2", "pbkdf2_sha256$x$y$z", "md5$abc", "scrypt$16384$8$1$!!$!!",
])
def test_verify_password_rejects_malformed_hash(encoded):
    assert verify_password(PASSWORD, encoded) is False


@pytest.mark.parametrize("make", [hash_password, lambda p: hash_password_pbkdf2(p, 1000)])
def test_verify_password_round_trip(make):
    encoded = make(PASSWORD)
    assert verify_password(PASSWORD, encoded) is True
    assert verify_password(PASSWORD + "x", encoded) is False


def test_hash_password_is_salted():
    assert hash_password(PASSWORD) != hash_password(PASSWORD)


def test_cli_hash_password_prints_usable_line(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert cli.main(["hash-password", "--stdin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("password_hash = scrypt$")
    assert verify_password(PASSWORD, line.split(" = ", 1)[1]) is True


def test_cli_hash_password_rejects_short(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["hash-password", "--stdin"]) == 1
    assert "at least 8" in capsys.readouterr().err


@pytest.mark.parametrize("options", [[], ["--stdin"]])
def test_cli_hash_password_end_of_input(options):
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "hash-password", *options], input="",
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error: standard input ended before a password was entered" in result.stderr
    assert result.stdout == ""
