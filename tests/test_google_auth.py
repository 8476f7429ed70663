"""Google authorisation: consent with PKCE, import, service account, the credentials file."""

from __future__ import annotations

import json
import logging
import os
import stat
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.errors import AuthorisationNeeded, ConfigError, SyncError
from appliance.sources.google import auth
from tests.fake_google import CLIENT_ID, CLIENT_SECRET, SERVICE_ACCOUNT
from tests.google_fixtures import fake_google, google_config, google_sync  # noqa: F401


def consent_redirect(pending: auth.PendingConsent) -> str:
    """Follow the consent link as a browser would and return where Google sends it."""
    response = requests.get(pending.url, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    return response.headers["Location"]


@pytest.fixture
def oauth_config(google_config, fake_google, tmp_path):
    return google_config(authorise=False, client_secrets=str(fake_google.client_file(tmp_path)))


def test_consent_link_uses_pkce_and_loopback(oauth_config):
    pending = auth.start_consent(oauth_config)
    query = parse_qs(urlsplit(pending.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["access_type"] == ["offline"]
    assert query["prompt"] == ["consent"]
    assert query["redirect_uri"] == [pending.redirect_uri]
    assert pending.redirect_uri.startswith("http://127.0.0.1:")
    assert query["scope"] == [auth.SCOPE_CONTACTS]


def test_consent_pasted_redirect_stores_credentials(oauth_config, google_sync, fake_google):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    pending = auth.start_consent(oauth_config)
    path = auth.finish_consent(oauth_config, pending, consent_redirect(pending))
    stored = json.loads(path.read_text())
    sync, _ = google_sync(oauth_config)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stored["refresh_token"].startswith("1//fake-refresh-")
    assert stored["token_uri"] == oauth_config.google.token_uri
    assert sync.run().outcome == "ok"


def test_consent_bare_code_is_accepted(oauth_config):
    pending = auth.start_consent(oauth_config)
    code = parse_qs(urlsplit(consent_redirect(pending)).query)["code"][0]
    assert auth.finish_consent(oauth_config, pending, code).exists()


def test_consent_other_state_is_rejected(oauth_config):
    first = auth.start_consent(oauth_config)
    second = auth.start_consent(oauth_config)
    with pytest.raises(SyncError, match="another consent link"):
        auth.finish_consent(oauth_config, second, consent_redirect(first))


def test_consent_code_works_once(oauth_config):
    pending = auth.start_consent(oauth_config)
    redirect = consent_redirect(pending)
    auth.finish_consent(oauth_config, pending, redirect)
    with pytest.raises(SyncError, match="invalid_grant"):
        auth.finish_consent(oauth_config, pending, redirect)


def test_consent_denied_is_reported(oauth_config, fake_google):
    fake_google.consent_error = "access_denied"
    pending = auth.start_consent(oauth_config)
    with pytest.raises(SyncError, match="access_denied"):
        auth.finish_consent(oauth_config, pending, consent_redirect(pending))


@pytest.mark.parametrize("pasted, message", [
    ("", "Nothing was pasted"),
    ("http://127.0.0.1:5000/?state=x", "no code= part"),
    ("http://127.0.0.1:5000/?error=access_denied&state=x", "access_denied"),
    ("not a url", "neither an address nor an authorisation code"),
    ("localhost:5000/callback", "neither an address nor an authorisation code"),
    ("yes", "neither an address nor an authorisation code"),
])
def test_parse_redirect_rejects_bad_input(pasted, message):
    with pytest.raises(SyncError, match=message):
        auth.parse_redirect(pasted)


def test_parse_redirect_accepts_bare_code():
    assert auth.parse_redirect(" 4/0AfJohXfakeAuthCode0123456789 ") == (
        "4/0AfJohXfakeAuthCode0123456789", None)


def test_consent_bad_paste_never_reaches_google(oauth_config, fake_google):
    pending = auth.start_consent(oauth_config)
    exchanges = len(fake_google.calls("token"))
    with pytest.raises(SyncError, match="neither an address nor an authorisation code"):
        auth.finish_consent(oauth_config, pending, "not a url")
    assert len(fake_google.calls("token")) == exchanges


def test_consent_logs_no_secrets(oauth_config, caplog):
    caplog.set_level(logging.DEBUG)
    pending = auth.start_consent(oauth_config)
    redirect = consent_redirect(pending)
    path = auth.finish_consent(oauth_config, pending, redirect)
    stored = json.loads(path.read_text())
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    for secret in (code, stored["refresh_token"], stored["token"], CLIENT_SECRET,
                   pending.code_verifier):
        assert secret not in logged


def test_consent_without_client_file_names_setting(google_config):
    config = google_config(authorise=False)
    with pytest.raises(ConfigError, match=r"\[google\] client_secrets"):
        auth.start_consent(config)


def test_consent_rejects_web_client_file(google_config, tmp_path):
    client = tmp_path / "client.json"
    client.write_text(json.dumps({"web": {"client_id": CLIENT_ID, "client_secret": "s"}}))
    config = google_config(authorise=False, client_secrets=str(client))
    with pytest.raises(ConfigError, match="not a Desktop app client"):
        auth.start_consent(config)


@pytest.mark.parametrize("content, message", [
    ({"type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
     "lacks refresh_token"),
    ({"type": "service_account", "client_email": SERVICE_ACCOUNT}, "service_account_key"),
    ([1, 2], "not a JSON object"),
    ("not json", "not valid JSON"),
])
def test_import_rejects_bad_file(google_config, tmp_path, content, message):
    config = google_config(authorise=False)
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        auth.import_authorised_user(config, path)


def test_import_missing_file_names_path(google_config, tmp_path):
    config = google_config(authorise=False)
    with pytest.raises(ConfigError, match="nowhere.json not found"):
        auth.import_authorised_user(config, tmp_path / "nowhere.json")


def test_load_without_credentials_needs_authorisation(google_config):
    with pytest.raises(AuthorisationNeeded, match="/setup"):
        auth.load_credentials(google_config(authorise=False))


def test_save_credentials_replaces_atomically(google_config, tmp_path):
    config = google_config()
    path = auth.credentials_path(config)
    credentials = auth.load_credentials(config)
    auth.save_credentials(path, credentials)
    leftovers = [item.name for item in path.parent.iterdir() if item.name.startswith(".cred")]
    assert leftovers == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def write_service_account_key(tmp_path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "fake-project", "private_key_id": "k1",
        "private_key": pem, "client_email": SERVICE_ACCOUNT, "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"}))
    os.chmod(path, 0o600)
    return str(path)


def test_service_account_syncs_as_subject(google_sync, google_config, fake_google, tmp_path):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    config = google_config(authorise=False, subject="it@example.com",
                           service_account_key=write_service_account_key(tmp_path))
    sync, _ = google_sync(config)
    result = sync.run()
    assert result.outcome == "ok"
    assert sync.store.count_by_source() == {"google": 1}


def test_service_account_unauthorised_subject(google_sync, google_config, tmp_path):
    config = google_config(authorise=False, subject="someone@example.org",
                           service_account_key=write_service_account_key(tmp_path))
    sync, _ = google_sync(config)
    result = sync.run()
    assert result.outcome == "error"
    assert "domain-wide delegation" in result.error
    assert sync.store.get_state("google.authorisation") == "needed"


def test_service_account_without_subject_is_config_error(google_config, tmp_path):
    config = google_config(authorise=False,
                           service_account_key=write_service_account_key(tmp_path))
    with pytest.raises(ConfigError, match=r"\[google\] subject"):
        auth.load_credentials(config)


@pytest.mark.parametrize("value", ["http://people.example.com/", "ftp://127.0.0.1/"])
def test_endpoint_setting_rejects_plain_http_remote(google_config, value):
    with pytest.raises(ConfigError, match="api_root"):
        google_config(authorise=False, api_root=value)


@pytest.mark.parametrize("sources, scopes", [
    ({}, [auth.SCOPE_CONTACTS]),
    ({"other_contacts": "yes"}, [auth.SCOPE_CONTACTS, auth.SCOPE_OTHER_CONTACTS]),
    ({"workspace_directory": "yes"}, [auth.SCOPE_CONTACTS, auth.SCOPE_DIRECTORY]),
])
def test_required_scopes_follow_sources(google_config, sources, scopes):
    assert auth.required_scopes(google_config(authorise=False, **sources)) == scopes
