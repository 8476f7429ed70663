"""Notifications: webhook and SMTP delivery, problems, repeats, recoveries and faults."""

from __future__ import annotations

import json
import threading
import time

import pytest

from appliance.errors import ConfigError
from appliance.events import Events
from appliance.notify import (
    AUTHORISATION_LOST,
    DISK_LOW,
    REQUEST_ERRORS,
    SYNC_FAILING,
    Channel,
    Notifier,
    build_channels,
)
from appliance.store import Store
from appliance.web.middleware import RequestRecord
from tests.conftest import wait_until
from tests.notify_fixtures import make_certificates, smtp_server, webhook  # noqa: F401

FAKE_REFRESH_TOKEN = "1//0gFakeRefreshTokenForNotify0123"
MIB = 1024 * 1024


# -- a notifier on a real store with a clock the test moves --------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """Subscribes to notify.sent and keeps its fields."""

    def __init__(self, events: Events) -> None:
        self.sent: list[dict] = []
        events.subscribe("notify.sent", lambda **fields: self.sent.append(fields))


@pytest.fixture
def notifier_factory(make_config, tmp_path):
    started: list[Notifier] = []
    stores: list[Store] = []

    def start(notify: dict | None = None, channels: list[Channel] | None = None,
              disk_free: list[int] | None = None, store: Store | None = None,
              retry_delays_s: tuple[float, ...] = (5.0, 10.0)):
        config = make_config(notify={"name": "phonebook-test", **(notify or {})})
        if store is None:
            store = Store.open(config.storage.data_dir)
            stores.append(store)
        events = Events()
        clock = FakeClock()
        free = disk_free if disk_free is not None else [10_000 * MIB]
        notifier = Notifier(config, events, store, channels=channels, clock=clock,
                            disk_free_bytes=lambda: free[0], check_interval_s=0.05,
                            retry_delays_s=retry_delays_s,
                            appliance_url=lambda: "http://192.0.2.10:8080")
        notifier.fake_clock, notifier.recorder, notifier.store = clock, Recorder(events), store
        notifier.start()
        started.append(notifier)
        assert notifier.drain()
        return notifier

    yield start
    for notifier in started:
        notifier.stop()
    for store in stores:
        store.close()


def fail_sync(notifier: Notifier, error: str = "HTTP 503 from people.connections.list",
              wait: bool = True) -> None:
    """Emit a failed sync; with ``wait``, return once the notifier has handled it."""
    notifier.events.emit("sync.finished", run_id="r", kind="incremental", source="google",
                         outcome="error", error=error)
    if wait:
        assert notifier.drain()


def pass_sync(notifier: Notifier) -> None:
    notifier.events.emit("sync.finished", run_id="r", kind="incremental", source="google",
                         outcome="ok", error=None)
    assert notifier.drain()


# -- channels ------------------------------------------------------------------------------


@pytest.mark.parametrize("notify, names", [
    ({}, []),
    ({"webhook_url": "http://127.0.0.1:9/hook"}, ["webhook"]),
    ({"smtp_host": "127.0.0.1", "email_from": "a@example.com", "email_to": "b@example.com"},
     ["email"]),
    ({"webhook_url": "http://127.0.0.1:9/hook", "smtp_host": "127.0.0.1",
      "email_from": "a@example.com", "email_to": "b@example.com"}, ["webhook", "email"]),
])
def test_build_channels_from_settings(make_config, notify, names):
    channels = build_channels(make_config(notify=notify))
    assert [channel.name for channel in channels] == names


@pytest.mark.parametrize("notify, missing", [
    ({"smtp_host": "127.0.0.1"}, "email_from, email_to missing"),
    ({"email_to": "b@example.com"}, "smtp_host, email_from missing"),
])
def test_build_channels_rejects_half_email(make_config, notify, missing):
    with pytest.raises(ConfigError, match=missing):
        build_channels(make_config(notify=notify))


# -- problems and recoveries ----------------------------------------------------------------


def test_sync_failures_notify_once_then_recover(notifier_factory, webhook):
    notifier = notifier_factory({"webhook_url": webhook.url, "sync_failures": "3"})
    for _ in range(2):
        fail_sync(notifier)
    assert notifier.drain()
    assert webhook.bodies == []

    for _ in range(3):
        fail_sync(notifier)
    assert notifier.drain()
    assert len(webhook.bodies) == 1
    text = webhook.texts()[0]
    assert text.startswith("[PROBLEM] phonebook-test: Google sync failing")
    assert "3 syncs in a row failed" in text
    assert "HTTP 503 from people.connections.list" in text
    assert "http://192.0.2.10:8080/health" in text

    pass_sync(notifier)
    pass_sync(notifier)
    assert notifier.drain()
    assert len(webhook.bodies) == 2
    assert webhook.texts()[1].startswith("[RESOLVED] phonebook-test: Google sync failing")


def test_authorisation_lost_and_back(notifier_factory, webhook):
    notifier = notifier_factory({"webhook_url": webhook.url})
    notifier.events.emit("google.authorisation", authorised=False, reason="invalid_grant")
    notifier.events.emit("google.authorisation", authorised=False, reason="invalid_grant")
    assert notifier.drain()
    notifier.events.emit("google.authorisation", authorised=True, reason="")
    assert notifier.drain()
    texts = webhook.texts()
    assert len(texts) == 2
    assert texts[0].startswith("[PROBLEM] phonebook-test: Google authorisation lost")
    assert "invalid_grant" in texts[0]
    assert texts[1].startswith("[RESOLVED] phonebook-test: Google authorisation lost")


def test_disk_low_through_threshold(notifier_factory, webhook):
    free = [50 * MIB]
    notifier = notifier_factory({"webhook_url": webhook.url, "disk_free_mib": "200"},
                                disk_free=free)
    assert webhook.texts()[0].startswith("[PROBLEM] phonebook-test: Disk space low")
    assert "Only 50 MiB free" in webhook.texts()[0]

    free[0] = 900 * MIB
    notifier.fake_clock.advance(60)
    assert notifier.drain()
    assert len(webhook.bodies) == 2
    assert webhook.texts()[1].startswith("[RESOLVED] phonebook-test: Disk space low")


def test_request_errors_over_rate(notifier_factory, webhook):
    notifier = notifier_factory({"webhook_url": webhook.url, "request_errors": "5",
                                 "request_error_window_minutes": "5"})
    record = RequestRecord("id", "GET", "/directory", "/directory", 500, 0.01, 10, "127.0.0.1")
    ok_record = RequestRecord("id", "GET", "/directory", "/directory", 200, 0.01, 10, "::1")
    for _ in range(4):
        notifier.record_request(record)
        notifier.record_request(ok_record)
    notifier.fake_clock.advance(60)
    assert notifier.drain()
    assert webhook.bodies == []

    notifier.record_request(record)
    notifier.fake_clock.advance(60)
    assert notifier.drain()
    assert webhook.texts()[0].startswith("[PROBLEM] phonebook-test: Requests failing")

    notifier.fake_clock.advance(5 * 60)
    assert notifier.drain()
    assert webhook.texts()[1].startswith("[RESOLVED] phonebook-test: Requests failing")


def test_lasting_problem_repeats_after_period(notifier_factory, webhook):
    notifier = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1",
                                 "repeat_minutes": "60"})
    fail_sync(notifier)
    notifier.fake_clock.advance(59 * 60)
    fail_sync(notifier)
    assert notifier.drain()
    assert len(webhook.bodies) == 1

    notifier.fake_clock.advance(2 * 60)
    fail_sync(notifier)
    assert notifier.drain()
    assert len(webhook.bodies) == 2
    assert webhook.texts()[1].startswith("[STILL A PROBLEM] phonebook-test: Google sync")


def test_flapping_problem_notified_once_per_period(notifier_factory, webhook):
    notifier = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1",
                                 "repeat_minutes": "60"})
    for _ in range(5):
        fail_sync(notifier)
        notifier.fake_clock.advance(60)
        pass_sync(notifier)
        notifier.fake_clock.advance(60)
    assert notifier.drain()
    states = [text.split("]")[0] for text in webhook.texts()]
    assert states == ["[PROBLEM", "[RESOLVED"]


def test_state_survives_restart(notifier_factory, webhook):
    first = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1"})
    fail_sync(first)
    assert first.drain()
    first.stop()

    second = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1"},
                              store=first.store)
    second.fake_clock.now = first.fake_clock.now + 60
    fail_sync(second)
    assert second.drain()
    assert len(webhook.bodies) == 1
    pass_sync(second)
    assert second.drain()
    assert webhook.texts()[1].startswith("[RESOLVED]")


def test_notification_text_has_no_secret(notifier_factory, webhook):
    notifier = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1"})
    fail_sync(notifier, f"token refresh failed: refresh_token={FAKE_REFRESH_TOKEN}")
    assert notifier.drain()
    assert FAKE_REFRESH_TOKEN not in webhook.texts()[0]
    assert "[REDACTED]" in webhook.texts()[0]


# -- delivery --------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "tls", "none"])
def test_email_delivered_by_smtp(notifier_factory, smtp_server, security):
    handler, settings = smtp_server(security)
    notifier = notifier_factory({**settings, "sync_failures": "1"})
    fail_sync(notifier)
    assert notifier.drain()
    wait_until(lambda: len(handler.messages) == 1)
    envelope, message, authenticated = handler.messages[0]
    assert envelope.mail_from == "phonebook@example.com"
    assert envelope.rcpt_tos == ["it@example.com", "oncall@example.com"]
    assert message["Subject"] == "[PROBLEM] phonebook-test: Google sync failing"
    assert "1 sync in a row failed" in message.get_payload()
    assert authenticated is True
    assert notifier.recorder.sent == [{"channel": "email", "outcome": "ok"}]


def test_email_wrong_password_counts_error(notifier_factory, smtp_server):
    handler, settings = smtp_server("starttls")
    notifier = notifier_factory({**settings, "smtp_password": "wrong-password-value",
                                 "sync_failures": "1"})
    fail_sync(notifier)
    assert notifier.drain()
    assert handler.messages == []
    assert notifier.recorder.sent == [{"channel": "email", "outcome": "error"}]


def test_email_untrusted_certificate_fails(notifier_factory, smtp_server, tmp_path):
    handler, settings = smtp_server("starttls")
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _, _ = make_certificates(other)
    notifier = notifier_factory({**settings, "smtp_ca_file": str(other_ca),
                                 "sync_failures": "1"})
    fail_sync(notifier)
    assert notifier.drain()
    assert handler.messages == []
    assert notifier.recorder.sent == [{"channel": "email", "outcome": "error"}]


def test_failed_send_retried_later(notifier_factory, webhook):
    webhook.statuses = [502, 503]
    notifier = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1"},
                                retry_delays_s=(30.0, 120.0))
    fail_sync(notifier)
    assert notifier.drain()
    assert webhook.bodies == []

    notifier.fake_clock.advance(31)
    assert notifier.drain()
    assert webhook.bodies == []
    notifier.fake_clock.advance(121)
    assert notifier.drain()
    assert len(webhook.bodies) == 1
    assert [sent["outcome"] for sent in notifier.recorder.sent] == ["error", "error", "ok"]


def test_send_gives_up_after_three_attempts(notifier_factory, webhook):
    webhook.statuses = [500, 500, 500, 500]
    notifier = notifier_factory({"webhook_url": webhook.url, "sync_failures": "1"},
                                retry_delays_s=(30.0, 120.0))
    fail_sync(notifier)
    for _ in range(4):
        notifier.fake_clock.advance(200)
        assert notifier.drain()
    assert [sent["outcome"] for sent in notifier.recorder.sent] == ["error"] * 3
    assert webhook.statuses == [500]


class SlowChannel(Channel):
    name = "webhook"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[str] = []

    def send(self, notification) -> None:
        self.release.wait(10)
        self.sent.append(notification.subject)


class BrokenChannel(Channel):
    name = "webhook"

    def send(self, notification) -> None:
        raise RuntimeError("channel bug")


def test_slow_channel_never_blocks_emitter(notifier_factory):
    channel = SlowChannel()
    notifier = notifier_factory({"sync_failures": "1", "request_errors": "0"},
                                channels=[channel])
    fail_sync(notifier, wait=False)
    started = time.perf_counter()
    for _ in range(50):
        fail_sync(notifier, wait=False)
        notifier.record_request(RequestRecord("id", "GET", "/", "unmatched", 500, 0.0, 0, ""))
    elapsed_s = time.perf_counter() - started
    channel.release.set()
    assert elapsed_s < 0.5
    assert notifier.drain()
    assert channel.sent == ["[PROBLEM] phonebook-test: Google sync failing"]


def test_broken_channel_keeps_thread_alive(notifier_factory, webhook):
    notifier = notifier_factory({"sync_failures": "1"}, channels=[BrokenChannel()])
    fail_sync(notifier)
    assert notifier.drain()
    pass_sync(notifier)
    assert notifier.drain()
    assert notifier.is_alive()
    assert notifier.recorder.sent == [{"channel": "webhook", "outcome": "error"}] * 2


def test_notifier_registered_as_thread(serve):
    running = serve()
    workers = [worker for worker in running.appliance.threads if worker.name == "notifier"]
    assert len(workers) == 1
    assert workers[0].is_alive()


def stored_problem(store: Store, problem: str) -> None:
    store.set_state(f"notify.{problem}", json.dumps(
        {"active": True, "announced": True, "since": 1_799_999_000.0,
         "notified_at": 1_799_999_000.0, "detail": "from before the restart"}))


@pytest.mark.parametrize("problem", [SYNC_FAILING, AUTHORISATION_LOST])
def test_stored_problem_kept_after_restart(notifier_factory, webhook, problem):
    notifier = notifier_factory()
    stored_problem(notifier.store, problem)
    restarted = notifier_factory({"webhook_url": webhook.url}, store=notifier.store)
    assert restarted.problem_states()[problem].active is True
    assert webhook.bodies == []


@pytest.mark.parametrize("problem, title", [(DISK_LOW, "Disk space low"),
                                            (REQUEST_ERRORS, "Requests failing")])
def test_stored_problem_resolved_after_restart(notifier_factory, webhook, problem, title):
    notifier = notifier_factory()
    stored_problem(notifier.store, problem)
    notifier_factory({"webhook_url": webhook.url}, store=notifier.store)
    assert webhook.texts() == [
        f"[RESOLVED] phonebook-test: {title}\n"
        + ("Disk space is back above the limit" if problem == DISK_LOW
           else "Server errors are back below the limit")
        + " after 16 min.\nStatus: http://192.0.2.10:8080/health"]
