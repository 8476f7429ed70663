"""Settings table, ini validation, generated docs and the CLI's config errors."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from appliance import config as config_module
from appliance.cisco import text as cisco_text
from appliance.config import (
    PUBLIC_BASE_URL_MAX,
    SETTINGS,
    load_config,
    render_example_ini,
    render_reference_markdown,
)
from appliance.directory.labels import LABEL_ID_CHARS
from appliance.errors import ConfigError
from appliance.tokens import TOKEN_BYTES
from appliance.web.phone import MAX_PAGE_DIGITS
from conftest import write_ini

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_defaults_without_file():
    config = load_config(None)
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 8080
    assert config.storage.data_dir == Path("data")
    assert config.source == "embedded defaults"


def test_every_setting_default_converts():
    for setting in SETTINGS:
        setting.convert(setting.default)


def test_settings_have_unique_keys():
    keys = [(setting.section, setting.key) for setting in SETTINGS]
    assert len(keys) == len(set(keys))


def test_settings_have_help_ending_in_period():
    for setting in SETTINGS:
        assert setting.help.endswith("."), f"[{setting.section}] {setting.key}"


def test_example_ini_matches_settings_table():
    committed = (ROOT / "config.example.ini").read_text(encoding="utf-8")
    assert committed == render_example_ini(), "run: .venv/bin/python docs/generate.py"


def test_configuration_doc_matches_settings_table():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert render_reference_markdown() in page, "run: .venv/bin/python docs/generate.py"


def test_example_ini_loads_as_defaults(tmp_path):
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and "=" in line and not line.startswith("# ") else line
        for line in render_example_ini().splitlines())
    path = tmp_path / "example.ini"
    path.write_text(uncommented, encoding="utf-8")
    assert load_config(path).server.port == load_config(None).server.port


@pytest.mark.parametrize("body, fragments", [
    ("[server]\nport = ten\n",
     ['Invalid value "ten"', "port in [server]", "expected a whole number"]),
    ("[server]\nport = 70000\n", ['"70000"', "from 0 to 65535"]),
    ("[server]\nprot = 8080\n", ["Unknown key prot in [server]", "expected one of host, port"]),
    ("[sever]\nport = 8080\n", ["Unknown section [sever]", "[server]"]),
    ("[server]\npublic_base_url = 192.168.1.10:8080\n",
     ["public_base_url in [server]", "http://"]),
    ("[dialplan]\nhome_country = Germany\n", ["home_country in [dialplan]", "two-letter"]),
    ("[directory]\nsample_contacts = maybe\n", ['"maybe"', "yes or no"]),
    ("[directory]\npage_size = 40\n", ["page_size", "from 1 to 32"]),
    ("port = 8080\n", ["not a valid ini file", "section header"]),
    ("[server]\nport = 1\nport = 2\n", ["not a valid ini file", "port"]),
])
def test_invalid_config_message_names_everything(tmp_path, body, fragments):
    path = tmp_path / "config.ini"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_invalid_config_message_names_file(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[server]\nport = ten\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)


def test_config_with_bom_and_crlf_loads(tmp_path):
    path = tmp_path / "config.ini"
    path.write_bytes(b"\xef\xbb\xbf[server]\r\nport = 9090\r\n")
    assert load_config(path).server.port == 9090


def test_config_keeps_percent_signs(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[directory]\ntitle = 100% Staff\n", encoding="utf-8")
    assert load_config(path).directory.title == "100% Staff"


def test_secret_values_hidden_in_errors(tmp_path):
    secret = [setting for setting in SETTINGS if setting.secret]
    if not secret:
        pytest.skip("no secret settings in the table yet")
    setting = secret[0]
    path = tmp_path / "config.ini"
    # Try values until the converter rejects one, then check the message hides it.
    for bad in ("not valid \x01", "-1", "x" * 5):
        path.write_text(f"[{setting.section}]\n{setting.key} = {bad}\n", encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as error:
            assert bad not in str(error)
            return
    pytest.skip("the secret setting accepts any text")


def test_cli_invalid_config_exits_2_without_traceback(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[server]\nport = ten\n", encoding="utf-8")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert 'Invalid value "ten" for port in [server]' in result.stderr


def test_cli_missing_config_exits_2(tmp_path):
    result = run_cli("check-config", "--config", str(tmp_path / "absent.ini"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_cli_check_config_reports_valid(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[server]\nport = 9090\n", encoding="utf-8")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 0
    assert "valid" in result.stdout


@pytest.mark.parametrize("body, line", [
    ("[notify]\nsmtp_password S3cr3tPassw0rd\n", "line 2"),
    ("[notify]\nsmtp_user = ops\n\nsmtp_password S3cr3tPassw0rd\n", "line 4"),
    ("smtp_password = S3cr3tPassw0rd\n", "line 1"),
    ("[metrics\nbearer_token = S3cr3tPassw0rd\n", "line 1"),
])
def test_ini_syntax_error_hides_line_content(tmp_path, body, line):
    path = tmp_path / "config.ini"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "S3cr3tPassw0rd" not in message
    assert line in message


def test_ini_missing_equals_sign_named(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[notify]\nsmtp_password S3cr3tPassw0rd\n", encoding="utf-8")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert '"=" is missing' in result.stderr
    assert "S3cr3tPassw0rd" not in result.stderr + result.stdout


@pytest.mark.parametrize("body, offset, line", [
    (b"[directory]\ntitle = caf\xe9\n", 23, 2),
    (b"\xef\xbb\xbf[directory]\ntitle = caf\xe9\n", 26, 2),
    (b"\xff\xfe[\x00s\x00", 0, 1),
])
def test_config_not_utf8_names_offset(tmp_path, body, offset, line):
    path = tmp_path / "config.ini"
    path.write_bytes(body)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"offset {offset} (line {line})" in message
    assert "Save it as UTF-8" in message


@pytest.mark.parametrize("section, key, value", [
    ("storage", "data_dir", "occupied"),
    ("storage", "data_dir", "occupied/data"),
])
def test_folder_setting_on_file_rejected(tmp_path, monkeypatch, section, key, value):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "occupied").write_text("not a folder\n", encoding="utf-8")
    path = tmp_path / "config.ini"
    path.write_text(f"[{section}]\n{key} = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{key} in [{section}]" in message
    assert "occupied is a file, not a folder" in message


def test_folder_setting_missing_accepted(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(f"[storage]\ndata_dir = {tmp_path / 'new' / 'data'}\n", encoding="utf-8")
    assert load_config(path).storage.data_dir == tmp_path / "new" / "data"


def test_public_base_url_longest_accepted(tmp_path):
    url = "http://192.168.1.10:8080/" + "p" * (PUBLIC_BASE_URL_MAX - 25)
    path = tmp_path / "config.ini"
    path.write_text(f"[server]\npublic_base_url = {url}\n", encoding="utf-8")
    assert load_config(path).server.public_base_url == url


def test_public_base_url_too_long_rejected(tmp_path):
    url = "http://192.168.1.10:8080/" + "p" * (PUBLIC_BASE_URL_MAX - 24)
    path = tmp_path / "config.ini"
    path.write_text(f"[server]\npublic_base_url = {url}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"it has {PUBLIC_BASE_URL_MAX + 1} characters" in message
    assert f"at most {PUBLIC_BASE_URL_MAX} characters" in message


def test_max_link_path_matches_code():
    # The link budget in appliance.config counts these sizes from the phone routes.
    assert len(secrets.token_urlsafe(TOKEN_BYTES)) == 24
    assert LABEL_ID_CHARS <= 12
    assert MAX_PAGE_DIGITS == 6
    assert config_module.URL_MAX == cisco_text.URL_MAX


@pytest.mark.parametrize("body, fragments", [
    ("[google]\nrequest_timeout_seconds = inf\n", ['"inf"', "request_timeout_seconds"]),
    ("[google]\nrequest_timeout_seconds = nan\n", ['"nan"', "request_timeout_seconds"]),
    ("[phones]\nrate_limit_per_second = infinity\n", ['"infinity"', "rate_limit_per_second"]),
    ("[notify]\nemail_to = not an email\n",
     ["email_to in [notify]", '"not an email" is not an email address']),
    ("[notify]\nemail_to = it@example.com, ops\n", ['"ops" is not an email address']),
    ("[dialplan]\nhome_country = XX\n", ['"XX"', "home_country", "libphonenumber knows"]),
    ("[server]\nmax_request_header_bytes = 1024\n",
     ['"1024"', "max_request_header_bytes", "from 2048"]),
])
def test_config_value_rejected(tmp_path, body, fragments):
    path = tmp_path / "config.ini"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("section, values, fragments", [
    ("health", {"freshness_warn_minutes": "2000"},
     ["freshness_fail_minutes (1440) must be more than freshness_warn_minutes (2000)"]),
    ("health", {"freshness_warn_minutes": "60", "freshness_fail_minutes": "60"},
     ["freshness_fail_minutes (60)", "freshness_warn_minutes (60)"]),
    ("health", {"disk_warn_free_mib": "50"},
     ["disk_fail_free_mib (100) must be less than disk_warn_free_mib (50)"]),
    ("logging", {"when": "midnight", "interval": "2"}, ["interval (2) must be 1 when = midnight"]),
    ("logging", {"max_file_mib": "500"},
     ["max_total_mib (500) must be at least three times max_file_mib (500)"]),
    ("notify", {"smtp_host": "mail.example.com"},
     ["smtp_host set but email_from, email_to missing"]),
])
def test_config_cross_key_rule_names_keys(tmp_path, section, values, fragments):
    path = write_ini(tmp_path / "config.ini", {section: values})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"Invalid settings in [{section}] of {path}" in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("section, values", [
    ("health", {"freshness_warn_minutes": "60", "freshness_fail_minutes": "61"}),
    ("health", {"disk_warn_free_mib": "0", "disk_fail_free_mib": "0"}),
    ("logging", {"when": "d", "interval": "3"}),
    ("notify", {"smtp_host": "mail.example.com", "email_from": "pb@example.com",
                "email_to": "it@example.com, ops@example.com"}),
    ("dialplan", {"home_country": "de"}),
])
def test_config_cross_key_rule_accepts(tmp_path, section, values):
    load_config(write_ini(tmp_path / "config.ini", {section: values}))


def test_cli_check_config_applies_cross_key_rules(tmp_path):
    path = write_ini(tmp_path / "config.ini", {"health": {"freshness_warn_minutes": "2000"}})
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "freshness_warn_minutes" in result.stderr
