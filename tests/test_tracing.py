"""Request tracing end to end: request IDs, access lines, error pages and the log scenario."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from xml.etree import ElementTree

import bottle
import pytest
import requests

from appliance.logs import setup_logging
from appliance.runtime import Appliance
from appliance.sources.google import auth
from tests.conftest import RunningAppliance, wait_until
from tests.fake_google import CLIENT_SECRET
from tests.google_fixtures import fake_google, google_config  # noqa: F401 (fixtures)
from tests.notify_fixtures import SMTP_PASSWORD, WebhookReceiver
from tests.notify_fixtures import smtp_server  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[1]
FAKE_ACCESS_TOKEN = "ya29.a0AfB_scenarioAccessToken0123456789"
FAKE_COOKIE_VALUE = "scenarioCookieValue0123456789"
PHONE_HEADERS = {"x-CiscoIPPhoneModelName": "CP-8845",
                 "User-Agent": "Allegro-Software-WebClient/5.40b1"}
PHONE_QUERY = "?name=SEP001122334455&locale=English_United_States"


# -- an appliance with logging set up, served on 127.0.0.1 ----------------------------------


def crash_route() -> str:
    """A route that only tests add: it logs a careless line, then fails."""
    logging.getLogger("tests.crash").info("about to call upstream", extra={
        "headers": dict(bottle.request.headers)})
    raise RuntimeError(f"upstream refused Authorization: Bearer {FAKE_ACCESS_TOKEN}")


def busy_route() -> None:
    bottle.abort(503, "The directory is being rebuilt. Try again in a minute.")


def add_test_routes(app: bottle.Bottle) -> None:
    """Wrap the product app for tests only: a crash and an abort, under /directory."""
    app.route("/directory/test-crash", callback=crash_route)
    app.route("/directory/test-busy", callback=busy_route)


def prepare_for_tests(appliance: Appliance) -> None:
    """Add the test routes, and move the sync scheduler's first run out of the way.

    The test runs every sync itself, so a scheduled one must not overlap them.
    """
    add_test_routes(appliance.bottle_app)
    if appliance.sync_scheduler is not None:
        appliance.sync_scheduler.first_delay_s = 3600.0


@pytest.fixture
def traced(serve, make_config, tmp_path) -> Iterator:
    """Start an appliance with logging set up; the console goes to a StringIO."""
    running: list[RunningAppliance] = []
    root_level = logging.getLogger().level

    def start(config=None, **sections) -> RunningAppliance:
        if config is None:
            sections.setdefault("logging", {}).setdefault("dir", str(tmp_path / "logs"))
            config = make_config(server={"port": "0"}, **sections)
        console = io.StringIO()
        logging_setup = setup_logging(config, console_stream=console)
        instance = serve(config=config, prepare=prepare_for_tests)
        instance.console, instance.logging_setup = console, logging_setup
        instance.log_dir = Path(config.logging.dir) if config.logging.dir else None
        running.append(instance)
        return instance

    yield start
    for instance in running:
        instance.logging_setup.close()
    logging.getLogger().setLevel(root_level)
    logging.captureWarnings(False)


def file_lines(log_dir: Path, name: str) -> list[dict]:
    """Return the JSON lines of a log file and of its rotated files, oldest first."""
    lines: list[dict] = []
    for path in sorted(log_dir.glob(f"{name}.*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines += [json.loads(line) for line in handle]
    active = log_dir / name
    if active.exists():
        lines += [json.loads(line) for line in active.read_text(encoding="utf-8").splitlines()]
    return lines


def with_id(lines: list[dict], request_id: str) -> list[dict]:
    return [line for line in lines if line.get("request_id") == request_id]


# -- request IDs ------------------------------------------------------------------------------


@pytest.mark.parametrize("path, headers, status", [
    ("/directory" + PHONE_QUERY, PHONE_HEADERS, 200),
    ("/no-such-page", {}, 404),
    ("/directory/no-such-page", PHONE_HEADERS, 404),
    ("/directory/test-crash", PHONE_HEADERS, 500),
    ("/directory/test-busy", {}, 503),
    ("/livez", {}, 200),
])
def test_every_response_has_request_id(traced, path, headers, status):
    running = traced()
    response = running.get(path, headers=headers)
    assert response.status_code == status
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["X-Request-ID"])
    assert re.fullmatch(r"\d+\.\dms", response.headers["X-Response-Time"])


@pytest.mark.parametrize("incoming, kept", [
    ("phone-42.retry_1", True),
    ("x" * 64, True),
    ("x" * 65, False),
    ("has space", False),
    ("../../etc/passwd", False),
    ("id;drop", False),
    ("", False),
])
def test_incoming_request_id_kept_or_replaced(traced, incoming, kept):
    running = traced()
    response = running.get("/directory", headers={"X-Request-ID": incoming})
    returned = response.headers["X-Request-ID"]
    assert (returned == incoming) is kept
    access = with_id(file_lines(running.log_dir, "access.log"), returned)
    assert len(access) == 1


# -- error pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("path, headers, content_type", [
    ("/directory/no-such-page", {}, "text/xml; charset=utf-8"),
    ("/lookup/no-such-page", {}, "text/xml; charset=utf-8"),
    ("/no-such-page", PHONE_HEADERS, "text/xml; charset=utf-8"),
    ("/no-such-page", {"User-Agent": "Cisco-CP-8845-3PCC/11.3.7"}, "text/xml; charset=utf-8"),
    ("/no-such-page", {"Accept-Charset": "iso-8859-1, utf-8;q=0.8",
                       "x-CiscoIPPhoneModelName": "CP-7940"}, "text/xml; charset=iso-8859-1"),
    ("/no-such-page", {"Accept": "application/json"}, "application/json"),
    ("/no-such-page", {}, "text/plain; charset=utf-8"),
])
def test_not_found_page_follows_client(traced, path, headers, content_type):
    running = traced()
    response = running.get(path, headers=headers)
    request_id = response.headers["X-Request-ID"]
    assert response.status_code == 404
    assert response.headers["Content-Type"] == content_type
    if content_type.startswith("text/xml"):
        root = ElementTree.fromstring(response.content)
        assert root.tag == "CiscoIPPhoneText"
        assert root.findtext("Title") == "Not found"
        assert root.findtext("Text") == f"Page not found.\nRequest ID: {request_id}"
    elif content_type == "application/json":
        assert response.json() == {"ok": False, "error": "Page not found.", "status": 404,
                                   "request_id": request_id}
    else:
        assert response.text == f"404 Not Found: Page not found.\nRequest ID: {request_id}\n"


def test_abort_message_reaches_phone(traced):
    running = traced()
    response = running.get("/directory/test-busy", headers=PHONE_HEADERS)
    root = ElementTree.fromstring(response.content)
    assert response.status_code == 503
    assert root.findtext("Title") == "Not ready"
    assert root.findtext("Text").startswith("The directory is being rebuilt.")


def test_method_not_allowed_keeps_allow_header(traced):
    running = traced()
    response = running.session.post(running.base_url + "/directory", timeout=10,
                                     headers={"Accept": "application/json"})
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert response.json()["error"] == "This method is not allowed here."


def test_crash_logged_once_never_shown(traced, capfd):
    running = traced()
    response = running.get("/directory/test-crash", headers=PHONE_HEADERS)
    request_id = response.headers["X-Request-ID"]

    assert response.status_code == 500
    assert b"Traceback" not in response.content
    assert b"RuntimeError" not in response.content
    assert request_id.encode() in response.content
    errors = file_lines(running.log_dir, "errors.log")
    assert len(errors) == 1
    error = errors[0]
    assert error["request_id"] == request_id
    assert error["message"] == "request failed"
    assert error["route"] == "/directory/test-crash"
    assert error["phone_model"] == "CP-8845"
    assert "Traceback (most recent call last)" in error["exception"]
    assert "RuntimeError: upstream refused" in error["exception"]
    assert FAKE_ACCESS_TOKEN not in error["exception"]
    assert "Traceback" not in capfd.readouterr().err


# -- access lines -----------------------------------------------------------------------------


def test_access_line_for_phone(traced):
    running = traced()
    response = running.get("/directory" + PHONE_QUERY, headers=PHONE_HEADERS)
    line = with_id(file_lines(running.log_dir, "access.log"), response.headers["X-Request-ID"])[0]
    assert line["level"] == "INFO"
    assert line["logger"] == "appliance.web.access"
    assert line["method"] == "GET"
    assert line["route"] == "/directory"
    assert line["path"] == "/directory"
    assert line["status"] == 200
    assert line["bytes"] == len(response.content)
    assert line["duration_ms"] > 0
    assert line["client"] == "127.0.0.1"
    assert line["phone_model"] == "CP-8845"
    assert line["device_name"] == "SEP001122334455"


def test_unmatched_route_label(traced):
    running = traced()
    response = running.get("/wp-admin/setup.php")
    line = with_id(file_lines(running.log_dir, "access.log"), response.headers["X-Request-ID"])[0]
    assert line["route"] == "unmatched"
    assert line["path"] == "/wp-admin/setup.php"
    assert line["status"] == 404


def test_rate_limited_route_label(traced):
    running = traced(phones={"rate_limit_per_second": "0.001", "rate_limit_burst": "3"})
    # The server's readiness check took part of the burst already.
    responses = [running.get("/directory/browse") for _ in range(4)]
    response = responses[-1]
    line = with_id(file_lines(running.log_dir, "access.log"), response.headers["X-Request-ID"])[0]
    assert response.status_code == 429
    assert line["route"] == "rate_limited"
    assert line["status"] == 429


@pytest.mark.parametrize("level, expected", [("info", []), ("debug", ["DEBUG"])])
def test_metrics_scrape_logged_at_debug(traced, level, expected):
    running = traced(logging={"level": level})
    response = running.get("/metrics")
    lines = with_id(file_lines(running.log_dir, "access.log"), response.headers["X-Request-ID"])
    assert [line["level"] for line in lines] == expected


# -- the serve command ----------------------------------------------------------------------------


def test_serve_command_writes_json_logs(tmp_path):
    config = tmp_path / "config.ini"
    config.write_text(f"[server]\nhost = 127.0.0.1\nport = 0\n"
                      f"[storage]\ndata_dir = {tmp_path / 'data'}\n"
                      f"[logging]\ndir = {tmp_path / 'logs'}\n", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--config", str(config)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    try:
        stdout_lines: list[dict] = []
        while not any(line["message"] == "serving" for line in stdout_lines):
            text = process.stdout.readline()
            assert text, process.stderr.read()
            stdout_lines.append(json.loads(text))
        port = next(line for line in stdout_lines if line["message"] == "serving")[
            "listen"].rsplit(":", 1)[1]
        response = requests.get(f"http://127.0.0.1:{port}/directory", timeout=10,
                                headers={"X-Request-ID": "cli-request-1"})
        assert response.headers["X-Request-ID"] == "cli-request-1"
    finally:
        process.send_signal(signal.SIGTERM)
        remaining_out, remaining_err = process.communicate(timeout=30)

    assert process.returncode == 0
    all_stdout = [json.loads(line) for line in remaining_out.splitlines()] + stdout_lines
    assert any(line["message"] == "stopped" for line in all_stdout)
    assert remaining_err == ""
    access = with_id(file_lines(tmp_path / "logs", "access.log"), "cli-request-1")
    assert [line["route"] for line in access] == ["/directory"]
    app_messages = [line["message"] for line in file_lines(tmp_path / "logs", "app.log")]
    assert "serving" in app_messages


def test_command_rejects_bad_rotation(tmp_path):
    config = tmp_path / "config.ini"
    config.write_text("[logging]\nwhen = midnight\ninterval = 7\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "check-config", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert result.returncode == 2
    assert "interval" in result.stderr
    assert "Traceback" not in result.stderr


# -- the scenario ---------------------------------------------------------------------------------


def follow_menu(running: RunningAppliance, url: str, name_start: str) -> str:
    """Return the URL of the first MenuItem whose Name starts with ``name_start``."""
    root = ElementTree.fromstring(running.session.get(url, headers=PHONE_HEADERS,
                                                      timeout=10).content)
    for item in root.iter("MenuItem"):
        if item.findtext("Name", "").startswith(name_start):
            return item.findtext("URL")
    raise AssertionError(f"no menu item starting with {name_start!r} at {url}")


def test_scenario_traced_end_to_end(traced, google_config, fake_google, smtp_server,
                                    tmp_path):
    """Browse, search, 404, crash, failing and succeeding syncs, then rotation.

    The JSON lines must let one request be followed by its ID, show each error once
    with its stack, hold no secret, and the notifications must arrive once per
    problem and once per recovery.
    """
    webhook = WebhookReceiver()
    mail, smtp_settings = smtp_server("starttls")
    config = google_config(sections={
        "server": {"port": "0"},
        "logging": {"dir": str(tmp_path / "logs")},
        "notify": {**smtp_settings, "webhook_url": webhook.url, "name": "scenario",
                   "sync_failures": "2", "request_errors": "0", "disk_free_mib": "0"},
    })
    issued_refresh_tokens = set(fake_google.refresh_tokens)
    try:
        running = traced(config=config)
        appliance = running.appliance
        log_dir = running.log_dir

        # A phone browses the directory, then searches by name.
        menu = running.base_url + "/directory" + PHONE_QUERY
        browse_url = follow_menu(running, menu, "Browse")
        browse = running.session.get(browse_url, headers={
            **PHONE_HEADERS, "X-Request-ID": "browse-1",
            "Authorization": f"Bearer {FAKE_ACCESS_TOKEN}",
            "Cookie": f"session={FAKE_COOKIE_VALUE}"}, timeout=10)
        assert browse.status_code == 200
        search_form = ElementTree.fromstring(running.session.get(
            follow_menu(running, menu, "Search by name"), timeout=10).content)
        parameter = search_form.find("InputItem").findtext("QueryStringParam")
        search = running.session.get(search_form.findtext("URL"), timeout=10,
                                     params={parameter: "a"}, headers=PHONE_HEADERS)
        assert search.status_code == 200

        # A 404 and a crash in a handler.
        missing = running.get("/directory/no-such-page", headers=PHONE_HEADERS)
        assert missing.status_code == 404
        crash = running.get("/directory/test-crash", headers={
            **PHONE_HEADERS, "Authorization": f"Bearer {FAKE_ACCESS_TOKEN}",
            "Cookie": f"session={FAKE_COOKIE_VALUE}"})
        assert crash.status_code == 500
        crash_id = crash.headers["X-Request-ID"]

        # Google revokes the authorisation: two failed syncs, then a new one works.
        fake_google.revoke_refresh_tokens()
        failed_runs = [appliance.google_sync.run() for _ in range(2)]
        assert [run.outcome for run in failed_runs] == ["error", "error"]
        auth.import_authorised_user(config, fake_google.authorised_user_file(tmp_path))
        issued_refresh_tokens |= set(fake_google.refresh_tokens)
        good_run = appliance.google_sync.run(request_id="sync-request-1")
        assert good_run.outcome == "ok"
        assert appliance.notifier.drain()
        wait_until(lambda: len(mail.messages) == 4)
        wait_until(lambda: len(webhook.bodies) == 4)
    finally:
        webhook.stop()

    setup = running.logging_setup
    assert setup.directory.wait_idle()
    app_lines = file_lines(log_dir, "app.log")
    access_lines = file_lines(log_dir, "access.log")
    error_lines = file_lines(log_dir, "errors.log")
    console_lines = [json.loads(line) for line in running.console.getvalue().splitlines()]

    # One request followed end to end by its ID.
    browse_access = with_id(access_lines, "browse-1")
    assert len(browse_access) == 1
    assert browse_access[0]["route"] == "/directory/browse"
    assert browse_access[0]["phone_model"] == "CP-8845"
    assert browse.headers["X-Request-ID"] == "browse-1"
    crash_lines = with_id(console_lines, crash_id)
    assert [line["message"] for line in crash_lines] == [
        "about to call upstream", "request failed", "request"]

    # Each error once, with its stack.
    crash_errors = [line for line in error_lines if line["message"] == "request failed"]
    assert len(crash_errors) == 1
    assert crash_errors[0]["request_id"] == crash_id
    assert "Traceback (most recent call last)" in crash_errors[0]["exception"]
    sync_errors = [line for line in error_lines if line["message"] == "sync failed"]
    assert len(sync_errors) == 1  # the first failure is ERROR, the repeat a WARNING
    assert sync_errors[0]["run_id"] == failed_runs[0].run_id

    # Every line a sync run writes carries that run's ID.
    run_loggers = ("appliance.sources.google.sync", "appliance.sources.google.client",
                   "appliance.sources.google.people")
    sync_lines = [line for line in app_lines if line["logger"] in run_loggers]
    assert len(sync_lines) == 3
    assert [line.get("run_id") for line in sync_lines] == [
        run.run_id for run in failed_runs + [good_run]]
    good_calls = [call for call in fake_google.requests
                  if call["headers"].get("X-Request-ID") == "sync-request-1"]
    assert good_calls

    # No secret anywhere.
    secrets = ({FAKE_ACCESS_TOKEN, FAKE_COOKIE_VALUE, CLIENT_SECRET, SMTP_PASSWORD,
                "secret-path"} | issued_refresh_tokens | set(fake_google.access_tokens))
    everything = [json.dumps(line) for line in app_lines + access_lines + error_lines]
    everything += running.console.getvalue().splitlines()
    everything += [message.as_string() for _, message, _ in mail.messages]
    everything += [json.dumps(body) for body in webhook.bodies]
    for secret in secrets:
        assert not [line for line in everything if secret in line], secret

    # Notifications: once per problem, once per recovery, on both channels.
    expected = sorted([
        "[PROBLEM] scenario: Google authorisation lost",
        "[PROBLEM] scenario: Google sync failing",
        "[RESOLVED] scenario: Google authorisation lost",
        "[RESOLVED] scenario: Google sync failing"])
    assert sorted(body["text"].split("\n")[0] for body in webhook.bodies) == expected
    assert sorted(message["Subject"] for _, message, _ in mail.messages) == expected

    # Rotation: restart logging with a one-second period and two backups, then keep
    # serving until every log file has rotated at least four times.
    setup.close()
    setup = setup_logging(google_config(authorise=False, sections={
        "server": {"port": "0"},
        "logging": {"dir": str(log_dir), "when": "s", "backup_count": "2"}}),
        console_stream=io.StringIO())
    running.logging_setup = setup
    rotations = {handler.baseFilename: 0 for handler in setup.handlers
                 if hasattr(handler, "baseFilename")}
    last_period = {name: None for name in rotations}

    def rotated_four_times() -> bool:
        running.get("/directory/test-crash")
        for handler in setup.handlers:
            name = getattr(handler, "baseFilename", None)
            if name is not None and handler.rolloverAt != last_period[name]:
                rotations[name] += last_period[name] is not None
                last_period[name] = handler.rolloverAt
        return min(rotations.values()) >= 4

    wait_until(rotated_four_times, timeout_s=20, interval_s=0.25)
    assert setup.directory.wait_idle()
    for name in ("app.log", "access.log", "errors.log"):
        rotated = sorted(path.name for path in log_dir.glob(f"{name}.*"))
        assert len(rotated) == 2, rotated
        assert all(path.endswith(".gz") for path in rotated)
