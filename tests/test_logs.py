"""Logging setup: JSON fields, files by level, redaction, rotation, retention and fallback."""

from __future__ import annotations

import calendar
import gzip
import io
import json
import logging
import os
import re
import threading
import time
import warnings
from pathlib import Path

import pytest

from appliance import context
from appliance.config import SETTINGS, load_config
from appliance.errors import ConfigError
from appliance.filemodes import warn_if_config_readable
from appliance.logfiles import parse_rotated_name
from appliance.logs import log_status, setup_logging
from appliance.redaction import MASK, redact_text, register_secret
from tests.conftest import wait_until

FAKE_ACCESS_TOKEN = "ya29.a0AfB_fakeAccessToken0123456789"
FAKE_REFRESH_TOKEN = "1//0gFakeRefreshToken0123456789"
FAKE_CLIENT_SECRET = "GOCSPX-fakeClientSecret0123"
FAKE_AUTH_CODE = "4/0AfJohXfakeAuthCode0123456789"
FAKE_PASSWORD = "correct-horse-battery"
FAKE_COOKIE = "session=fakeCookieValue0123"
FAKE_SECRETS = (FAKE_ACCESS_TOKEN, FAKE_REFRESH_TOKEN, FAKE_CLIENT_SECRET, FAKE_AUTH_CODE,
                FAKE_PASSWORD, "fakeCookieValue0123")

DAY_S = 86400
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def logging_setup(make_config, tmp_path):
    """Set logging up from ini sections; the console goes to a StringIO."""
    installed = []
    root_level = logging.getLogger().level

    def start(files: bool = True, retry_interval_s: float = 30.0, **sections):
        logging_settings = {"dir": str(tmp_path / "logs")}
        logging_settings.update(sections.pop("logging", {}))
        console = io.StringIO()
        setup = setup_logging(make_config(logging=logging_settings, **sections), files=files,
                              console_stream=console, retry_interval_s=retry_interval_s)
        setup.console_text = console
        installed.append(setup)
        return setup

    yield start
    for setup in installed:
        setup.close()
    logging.getLogger().setLevel(root_level)
    logging.captureWarnings(False)


def read_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def console_lines(setup) -> list[dict]:
    return [json.loads(line) for line in setup.console_text.getvalue().splitlines()]


def day_stamp(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(unix_s))


def start_of_day(unix_s: float) -> float:
    return calendar.timegm(time.gmtime(unix_s)[:3] + (0, 0, 0))


# -- fields ------------------------------------------------------------------------


def test_json_line_has_standard_fields(logging_setup):
    setup = logging_setup()
    logging.getLogger("appliance.sync").info("sync finished", extra={"contacts": 412})
    line = console_lines(setup)[-1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
    assert line["level"] == "INFO"
    assert line["logger"] == "appliance.sync"
    assert line["message"] == "sync finished"
    assert line["contacts"] == 412
    assert "request_id" not in line


def test_json_line_carries_request_and_run_ids(logging_setup):
    setup = logging_setup()
    request_token = context.request_id.set("req-42")
    run_token = context.run_id.set("run-7")
    try:
        logging.getLogger("appliance.web").info("page served")
    finally:
        context.request_id.reset(request_token)
        context.run_id.reset(run_token)
    line = console_lines(setup)[-1]
    assert line["request_id"] == "req-42"
    assert line["run_id"] == "run-7"


def test_json_line_exception_has_stack(logging_setup):
    setup = logging_setup()
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("appliance.web").exception("request failed")
    line = console_lines(setup)[-1]
    assert line["exception"].startswith("Traceback (most recent call last)")
    assert "KeyError: 'missing'" in line["exception"]


def test_text_format_shows_extras(logging_setup):
    setup = logging_setup(logging={"format": "text"})
    logging.getLogger("appliance.sync").warning("sync slow", extra={"duration_s": 3.5,
                                                                    "source": "google api"})
    text = setup.console_text.getvalue()
    assert re.match(r"\d{4}-\d\d-\d\dT\S+Z WARNING appliance\.sync: sync slow ", text)
    assert "duration_s=3.5" in text
    assert 'source="google api"' in text


def test_level_setting_drops_lower_lines(logging_setup):
    setup = logging_setup(logging={"level": "warning"})
    logging.getLogger("appliance.sync").info("sync finished")
    logging.getLogger("appliance.sync").warning("sync slow")
    messages = [line["message"] for line in console_lines(setup)]
    assert messages == ["sync slow"]


# -- files ---------------------------------------------------------------------------


def test_files_split_by_level_and_logger(logging_setup, tmp_path):
    logging_setup()
    logging.getLogger("appliance.sync").info("sync finished")
    logging.getLogger("appliance.sync").error("sync failed")
    logging.getLogger("appliance.web.access").info("request")
    logs = tmp_path / "logs"
    assert [line["message"] for line in read_lines(logs / "app.log")] == [
        "sync finished", "sync failed"]
    assert [line["message"] for line in read_lines(logs / "errors.log")] == ["sync failed"]
    assert [line["message"] for line in read_lines(logs / "access.log")] == ["request"]


def test_waitress_loggers_reach_the_files(logging_setup, tmp_path):
    logging_setup()
    logging.getLogger("waitress.queue").warning("Task queue depth is %d", 5)
    lines = read_lines(tmp_path / "logs" / "app.log")
    assert lines[-1]["logger"] == "waitress.queue"
    assert lines[-1]["message"] == "Task queue depth is 5"


def test_log_dir_created_owner_only(logging_setup, tmp_path):
    logging_setup()
    mode = (tmp_path / "logs").stat().st_mode & 0o777
    assert mode == 0o700


def test_files_off_without_dir(logging_setup, tmp_path):
    setup = logging_setup(logging={"dir": ""})
    logging.getLogger("appliance.sync").info("sync finished")
    assert setup.directory is None
    assert not (tmp_path / "logs").exists()


def test_setup_twice_keeps_one_set(logging_setup):
    logging_setup()
    second = logging_setup()
    logging.getLogger("appliance.sync").info("sync finished")
    ours = [handler for handler in logging.getLogger().handlers
            if handler in second.handlers]
    assert len(ours) == 4
    assert len(console_lines(second)) == 1


def test_thread_exception_logged_with_stack(logging_setup, tmp_path):
    logging_setup()

    def crash():
        raise RuntimeError("worker broke")

    worker = threading.Thread(target=crash, name="sync-scheduler")
    worker.start()
    worker.join()
    line = read_lines(tmp_path / "logs" / "errors.log")[-1]
    assert line["thread_name"] == "sync-scheduler"
    assert "RuntimeError: worker broke" in line["exception"]


def test_python_warnings_become_log_lines(logging_setup, tmp_path):
    logging_setup()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old option", DeprecationWarning)
    line = read_lines(tmp_path / "logs" / "app.log")[-1]
    assert line["logger"] == "py.warnings"
    assert "old option" in line["message"]


@pytest.mark.parametrize("logging_settings, named", [
    ({"when": "midnight", "interval": "2"}, "interval"),
    ({"when": "w0", "interval": "3"}, "interval"),
    ({"max_file_mib": "100", "max_total_mib": "200"}, "max_total_mib"),
])
def test_setup_rejects_inconsistent_settings(logging_setup, logging_settings, named):
    with pytest.raises(ConfigError, match=named):
        logging_setup(logging=logging_settings)


# -- redaction -------------------------------------------------------------------------


@pytest.mark.parametrize("text, secret", [
    (f"Authorization: Bearer {FAKE_ACCESS_TOKEN}", FAKE_ACCESS_TOKEN),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    (f"{{'Authorization': 'Bearer opaque-token-value'}}", "opaque-token-value"),
    (f"Cookie: {FAKE_COOKIE}; theme=dark", "fakeCookieValue0123"),
    (f"Set-Cookie: {FAKE_COOKIE}; HttpOnly", "fakeCookieValue0123"),
    (f"http://127.0.0.1:8765/?state=abc&code={FAKE_AUTH_CODE}&scope=x", FAKE_AUTH_CODE),
    ("GET /cb?code=plainopaquecode123 HTTP/1.1", "plainopaquecode123"),
    (f'{{"access_token": "{FAKE_ACCESS_TOKEN}", "expires_in": 3599}}', FAKE_ACCESS_TOKEN),
    ('{"refresh_token": "opaque-refresh-value"}', "opaque-refresh-value"),
    (f"client_secret={FAKE_CLIENT_SECRET}&grant_type=refresh_token", FAKE_CLIENT_SECRET),
    ("client_secret: plain-secret-value", "plain-secret-value"),
    (f"password={FAKE_PASSWORD}", FAKE_PASSWORD),
    (f"smtp://mailer:{FAKE_PASSWORD}@mail.example.com:587", FAKE_PASSWORD),
    (f"token refresh failed with {FAKE_REFRESH_TOKEN} in body", FAKE_REFRESH_TOKEN),
    (f"unexpected {FAKE_CLIENT_SECRET} in text", FAKE_CLIENT_SECRET),
    ('"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0\\n'
     '-----END PRIVATE KEY-----\\n"', "MIIEvQIBADANBgkqhkiG9w0"),
    ("assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJzYUBleGFtcGxlIn0.c2lnbmF0dXJlMDEy",
     "eyJpc3MiOiJzYUBleGFtcGxlIn0"),
    ("https://hooks.slack.com/services/T0000/B0000/abcdefFAKE", "abcdefFAKE"),
    ("password: letmein", "letmein"),
    ("password: hunter2 was rejected", "hunter2"),
    ("token: Run chmod", "Run"),
    ("token:run chmod", "run"),
    ("password: 'run' chmod", "run"),
])
def test_redact_text_masks_secret(text, secret):
    redacted = redact_text(text)
    assert secret not in redacted
    assert MASK in redacted


@pytest.mark.parametrize("text", [
    "sync finished",
    "GET /directory/browse/A?page=2",
    "HTTP status code: 503",
    "google authorisation lost",
    "Cisco-CP-8845-3PCC/11.3.7",
    "http://192.168.1.10:8080/directory",
    "it holds a password hash or token: run chmod 640 demo/config.ini",
    "password: required for the admin pages",
])
def test_redact_text_keeps_plain_text(text):
    assert redact_text(text) == text


def test_redaction_keeps_config_mode_hint(logging_setup, tmp_path):
    setup = logging_setup()
    ini = tmp_path / "shared.ini"
    ini.write_text("[notify]\nsmtp_password = Plain-Words-9911\n", encoding="utf-8")
    ini.chmod(0o644)
    warn_if_config_readable(load_config(ini))
    console = setup.console_text.getvalue()
    assert f"token: run chmod 640 {ini}" in console
    assert "Plain-Words-9911" not in console


def test_redaction_covers_every_field(logging_setup, tmp_path):
    setup = logging_setup()
    log = logging.getLogger("appliance.sources.google")
    log.info("token exchange answered %s", f'{{"access_token": "{FAKE_ACCESS_TOKEN}"}}', extra={
        "headers": {"Authorization": f"Bearer {FAKE_ACCESS_TOKEN}", "Cookie": FAKE_COOKIE},
        "refresh_token": FAKE_REFRESH_TOKEN,
        "client_secret": FAKE_CLIENT_SECRET,
        "attempts": [{"password": FAKE_PASSWORD}],
        "url": f"http://127.0.0.1/cb?code={FAKE_AUTH_CODE}",
        "error": ValueError(f"bad grant {FAKE_REFRESH_TOKEN}")})
    try:
        raise RuntimeError(f"refresh failed: client_secret={FAKE_CLIENT_SECRET}")
    except RuntimeError:
        log.exception("token refresh failed", stack_info=True)
    written = (setup.console_text.getvalue()
               + (tmp_path / "logs" / "app.log").read_text(encoding="utf-8")
               + (tmp_path / "logs" / "errors.log").read_text(encoding="utf-8"))
    for secret in FAKE_SECRETS:
        assert secret not in written
    assert written.count(MASK) >= 10


def test_secret_settings_masked_anywhere(logging_setup, tmp_path):
    setup = logging_setup(notify={"smtp_password": "Plain-Words-9911"})
    logging.getLogger("appliance.notify").warning("login failed for Plain-Words-9911 user")
    assert "Plain-Words-9911" not in setup.console_text.getvalue()


def test_secret_registered_after_caching(logging_setup):
    text = "login as Cached-Words-4455 failed"
    assert redact_text(text) == text
    register_secret("Cached-Words-4455")
    assert redact_text(text) == f"login as {MASK} failed"


def test_log_call_with_bad_arguments_never_raises(logging_setup, monkeypatch):
    setup = logging_setup()
    # pytest's own capture handler would format the record first and raise.
    monkeypatch.setattr(logging.getLogger(), "handlers", list(setup.handlers))
    logging.getLogger("appliance.web").info("count %d", "not a number")
    assert "redaction failed" in setup.console_text.getvalue()


# -- rotation and retention --------------------------------------------------------------


@pytest.mark.parametrize("name, parsed", [
    ("app.log.2026-12-03", (calendar.timegm((2026, 12, 3, 0, 0, 0)), 0)),
    ("app.log.2026-12-03.gz", (calendar.timegm((2026, 12, 3, 0, 0, 0)), 0)),
    ("app.log.2026-12-03.2.gz", (calendar.timegm((2026, 12, 3, 0, 0, 0)), 2)),
    ("app.log", None),
    ("app.log.2026-12-03.gz.part", None),
    ("app.log.json.2026-12-03", None),
    ("access.log.2026-12-03.gz", None),
    ("app.log.2026-13-45.gz", None),
    ("app.log.backup", None),
])
def test_parse_rotated_name_cases(name, parsed):
    assert parse_rotated_name(name, "app.log", "%Y-%m-%d") == parsed


def make_rotated(logs: Path, base: str, stamps: list[str], size: int = 64) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for stamp in stamps:
        with gzip.open(logs / f"{base}.{stamp}.gz", "wb") as handle:
            handle.write(os.urandom(size))


def age_active_file(path: Path, age_s: float, text: str = "old line\n") -> float:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    modified = time.time() - age_s
    os.utime(path, (modified, modified))
    return modified


@pytest.mark.parametrize("when, stamp_format, period_s", [
    ("s", "%Y-%m-%d_%H-%M-%S", 1),
    ("m", "%Y-%m-%d_%H-%M", 60),
    ("h", "%Y-%m-%d_%H", 3600),
    ("d", "%Y-%m-%d", DAY_S),
    ("midnight", "%Y-%m-%d", DAY_S),
    ("w0", "%Y-%m-%d", 7 * DAY_S),
])
def test_rotation_deletes_beyond_backup_count(logging_setup, tmp_path, when, stamp_format,
                                              period_s):
    logs = tmp_path / "logs"
    now = time.time()
    old_stamps = [time.strftime(stamp_format, time.gmtime(now - (30 + age) * period_s))
                  for age in range(20)]
    make_rotated(logs, "app.log", old_stamps)
    age_active_file(logs / "app.log", 8 * period_s)

    setup = logging_setup(logging={"when": when, "backup_count": "3"})
    logging.getLogger("appliance.sync").info("first line after the restart")
    assert setup.directory.wait_idle()

    kept = sorted(path.name for path in logs.glob("app.log.*"))
    assert len(kept) == 3
    assert all(name.endswith(".gz") for name in kept)
    newest_old = f"app.log.{old_stamps[0]}.gz"
    assert newest_old in kept
    assert f"app.log.{old_stamps[-1]}.gz" not in kept


def test_rotation_after_downtime_names_old_day(logging_setup, tmp_path):
    logs = tmp_path / "logs"
    modified = age_active_file(logs / "app.log", 3 * DAY_S + 60)
    setup = logging_setup()
    logging.getLogger("appliance.sync").info("first line after the restart")
    assert setup.directory.wait_idle()

    rotated = logs / f"app.log.{day_stamp(modified)}.gz"
    with gzip.open(rotated, "rt", encoding="utf-8") as handle:
        assert handle.read() == "old line\n"
    assert [line["message"] for line in read_lines(logs / "app.log")] == [
        "first line after the restart"]


def test_rotation_keeps_file_with_taken_name(logging_setup, tmp_path):
    logs = tmp_path / "logs"
    modified = age_active_file(logs / "app.log", 2 * DAY_S, "second run\n")
    make_rotated(logs, "app.log", [day_stamp(modified)])
    setup = logging_setup()
    logging.getLogger("appliance.sync").info("third run")
    assert setup.directory.wait_idle()

    second = logs / f"app.log.{day_stamp(modified)}.1.gz"
    with gzip.open(second, "rt", encoding="utf-8") as handle:
        assert handle.read() == "second run\n"
    assert (logs / f"app.log.{day_stamp(modified)}.gz").exists()


def test_rotation_for_size_keeps_period_end(logging_setup, tmp_path):
    logs = tmp_path / "logs"
    setup = logging_setup(logging={"max_file_mib": "1"})
    app_log = next(handler for handler in setup.handlers
                   if getattr(handler, "baseFilename", "").endswith("app.log"))
    period_end = app_log.rolloverAt
    filler = "x" * 2000
    for _ in range(600):
        logging.getLogger("appliance.sync").info("filler line", extra={"filler": filler})
    assert setup.directory.wait_idle()

    rotated = list(logs.glob(f"app.log.{day_stamp(time.time())}*.gz"))
    assert len(rotated) == 1
    assert (logs / "app.log").stat().st_size < 1024 * 1024
    assert app_log.rolloverAt == period_end


def test_size_cap_deletes_oldest_first(logging_setup, tmp_path):
    logs = tmp_path / "logs"
    now = time.time()
    stamps = [day_stamp(now - age * DAY_S) for age in range(1, 11)]
    for base in ("app.log", "access.log"):
        make_rotated(logs, base, stamps, size=300 * 1024)
    setup = logging_setup(logging={"max_file_mib": "1", "max_total_mib": "3",
                                   "backup_count": "0"})

    assert setup.directory.size_bytes() <= 3 * 1024 * 1024
    remaining = {path.name for path in logs.glob("*.gz")}
    assert f"app.log.{stamps[0]}.gz" in remaining
    assert f"access.log.{stamps[0]}.gz" in remaining
    assert f"app.log.{stamps[-1]}.gz" not in remaining
    assert f"access.log.{stamps[-1]}.gz" not in remaining


def test_leftover_uncompressed_file_compressed_at_start(logging_setup, tmp_path):
    logs = tmp_path / "logs"
    stamp = day_stamp(time.time() - DAY_S)
    logs.mkdir()
    (logs / f"errors.log.{stamp}").write_text("line from before a crash\n", encoding="utf-8")
    (logs / f"errors.log.{stamp}.gz.part").write_bytes(b"half")
    setup = logging_setup()
    assert setup.directory.wait_idle()
    assert sorted(path.name for path in logs.glob("errors.log.*")) == [
        f"errors.log.{stamp}.gz"]


# -- falling back to standard error ----------------------------------------------------------


def test_unwritable_dir_falls_back_to_stderr(logging_setup, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    setup = logging_setup(logging={"dir": str(blocker / "logs"), "console": "no"})
    logging.getLogger("appliance.sync").info("sync finished")
    logging.getLogger("appliance.sync").error("sync failed")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    warnings_seen = [line for line in lines if line["message"].startswith("log files cannot")]
    assert len(warnings_seen) == 1
    assert [line["message"] for line in lines if line["logger"] == "appliance.sync"] == [
        "sync finished", "sync failed"]
    status = log_status()
    assert status.status == "warn"
    assert "Not a directory" in status.output
    assert setup.state.fallback_records == 2


def test_full_disk_falls_back_then_recovers(logging_setup, tmp_path, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is not available on this system")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").symlink_to("/dev/full")
    logging_setup(logging={"console": "no"}, retry_interval_s=0.05)

    logging.getLogger("appliance.sync").info("line while the disk is full")
    logging.getLogger("appliance.sync").info("second line while full")
    err = capsys.readouterr().err
    assert err.count("log files cannot be written") == 1
    assert "line while the disk is full" in err
    assert "No space left on device" in log_status().output

    (logs / "app.log").unlink()

    def line_reaches_file() -> bool:
        logging.getLogger("appliance.sync").info("line after space came back")
        return any(line["message"] == "line after space came back"
                   for line in read_lines(logs / "app.log"))

    wait_until(line_reaches_file)
    wait_until(lambda: any(line["message"] == "log files writable again"
                           for line in read_lines(logs / "app.log")))
    assert log_status().status == "pass"


def test_fallback_skips_lines_console_wrote(logging_setup, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    setup = logging_setup(logging={"dir": str(blocker / "logs")})
    logging.getLogger("appliance.sync").info("sync finished")
    err = capsys.readouterr().err
    assert "sync finished" not in err
    assert "log files cannot be written" in err
    assert "sync finished" in setup.console_text.getvalue()


# -- documentation -------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [setting for setting in SETTINGS
                                     if setting.section in ("logging", "notify")],
                         ids=lambda setting: f"{setting.section}.{setting.key}")
def test_logging_doc_names_setting(setting):
    page = (ROOT / "docs" / "logging.md").read_text(encoding="utf-8")
    assert f"`[{setting.section}] {setting.key}`" in page
