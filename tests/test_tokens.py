"""Phone tokens: issue, revoke, check, use counts, and the token command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.store import Store
from appliance.tokens import (
    PhoneTokens,
    TokenUseRecorder,
    hash_token,
    render_token_table,
)

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "data")
    yield store
    store.close()


def test_create_stores_only_digest(store):
    record, token = PhoneTokens(store).create("Desk 12")
    stored = store.reader().execute("SELECT token_hash FROM phone_tokens").fetchone()[0]
    assert stored == hash_token(token)
    assert token not in stored
    assert record.name == "Desk 12"


def test_create_makes_url_safe_tokens(store):
    tokens = PhoneTokens(store)
    texts = {tokens.create(f"phone {number}")[1] for number in range(20)}
    assert len(texts) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24}", text) for text in texts)


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "evil\nname\x1b[31m", "Desk\x0012",
                                  "Desk\u200b12", "Desk\x7f"])
def test_create_rejects_bad_name(store, name):
    with pytest.raises(ValueError):
        PhoneTokens(store).create(name)


@pytest.mark.parametrize("name, stored", [
    ("Desk\t12\n", "Desk 12"),
    ("R\u00e9ception 7841", "R\u00e9ception 7841"),
    ("Lager (Halle 2) \u2013 Tor #3", "Lager (Halle 2) \u2013 Tor #3"),
])
def test_create_keeps_printable_name(store, name, stored):
    record, _ = PhoneTokens(store).create(name)
    assert record.name == stored


def test_create_control_name_message(store):
    with pytest.raises(ValueError) as caught:
        PhoneTokens(store).create("evil\nname\x1b[31m")
    assert "control characters (U+001B)" in str(caught.value)


@pytest.mark.parametrize("given, reason", [
    ("", "missing"),
    ("not-a-token", "unknown"),
])
def test_check_names_failure_reason(store, given, reason):
    PhoneTokens(store).create("Desk 12")
    assert PhoneTokens(store).check(given) == (None, reason)


def test_check_refuses_revoked_token(store):
    tokens = PhoneTokens(store)
    record, token = tokens.create("Desk 12")
    assert tokens.check(token) == (record.id, "ok")
    tokens.revoke(record.id)
    assert tokens.check(token) == (None, "revoked")


@pytest.mark.parametrize("token_id", [99, 0, -1, 2**63, 99999999999999999999999])
def test_revoke_unknown_id_raises(store, token_id):
    with pytest.raises(LookupError):
        PhoneTokens(store).revoke(token_id)


@pytest.mark.parametrize("token_id", [0, -1, 2**63, 99999999999999999999999])
def test_get_out_of_range_id_none(store, token_id):
    assert PhoneTokens(store).get(token_id) is None


def test_revoke_twice_keeps_first_time(store):
    clock = FakeClock()
    tokens = PhoneTokens(store, clock=clock)
    record, _ = tokens.create("Desk 12")
    first = tokens.revoke(record.id).revoked_at
    clock.now += 60
    assert tokens.revoke(record.id).revoked_at == first


def test_flush_counts_uses_per_client_and_day(store):
    clock = FakeClock()
    tokens = PhoneTokens(store, clock=clock)
    record, _ = tokens.create("Desk 12")
    for client in ("10.0.0.5", "10.0.0.5", "10.0.0.6"):
        tokens.note_use(record.id, client)
    assert tokens.flush() == 3
    clock.now += 86400
    tokens.note_use(record.id, "10.0.0.5")
    tokens.flush()
    rows = sorted((day, client, uses) for day, client, uses, _ in tokens.recent_uses(record.id))
    assert rows == [("2026-05-28", "10.0.0.5", 2), ("2026-05-28", "10.0.0.6", 1),
                    ("2026-05-29", "10.0.0.5", 1)]
    stored = tokens.get(record.id)
    assert stored.uses == 4
    assert stored.last_client == "10.0.0.5"
    assert stored.last_used_at == clock.now


def test_flush_deletes_old_use_rows(store):
    clock = FakeClock()
    tokens = PhoneTokens(store, clock=clock)
    record, _ = tokens.create("Desk 12")
    tokens.note_use(record.id, "10.0.0.5")
    tokens.flush()
    clock.now += 91 * 86400
    tokens.note_use(record.id, "10.0.0.5")
    tokens.flush()
    assert len(tokens.recent_uses(record.id)) == 1
    assert tokens.get(record.id).uses == 2


def test_flush_keeps_counts_when_store_closed(store):
    tokens = PhoneTokens(store)
    record, _ = tokens.create("Desk 12")
    tokens.note_use(record.id, "10.0.0.5")
    writer = store._writer
    store._writer = None  # as after close: writes raise StoreError
    assert tokens.flush() == 0
    store._writer = writer
    assert tokens.flush() == 1


def test_recorder_stop_writes_pending_uses(store):
    tokens = PhoneTokens(store)
    record, _ = tokens.create("Desk 12")
    recorder = TokenUseRecorder(tokens, interval_s=60)
    recorder.start()
    assert recorder.is_alive()
    tokens.note_use(record.id, "10.0.0.5")
    recorder.stop()
    assert not recorder.is_alive()
    assert tokens.get(record.id).uses == 1


# -- the token command ---------------------------------------------------------


def run_cli(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(f"[storage]\ndata_dir = {tmp_path / 'data'}\n[server]\n"
                    "public_base_url = http://192.168.1.10:8080\n", encoding="utf-8")
    return path


def test_token_command_create_list_revoke(config_file):
    created = run_cli("token", "create", "Reception 7841", config=config_file)
    assert created.returncode == 0
    token = re.search(r"^  ([A-Za-z0-9_-]{24})$", created.stdout, re.M).group(1)
    assert f"http://192.168.1.10:8080/directory?token={token}" in created.stdout

    listed = run_cli("token", "list", config=config_file)
    assert "Reception 7841" in listed.stdout
    assert "live" in listed.stdout
    assert token not in listed.stdout

    revoked = run_cli("token", "revoke", "1", config=config_file)
    assert revoked.returncode == 0
    assert "revoked" in run_cli("token", "list", config=config_file).stdout


def test_token_command_revoke_unknown_fails(config_file):
    result = run_cli("token", "revoke", "42", config=config_file)
    assert result.returncode == 1
    assert "No phone token has ID 42" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_command_empty_list_explains(config_file):
    result = run_cli("token", "list", config=config_file)
    assert "token create" in result.stdout


def test_token_command_rejects_escape_in_name(config_file):
    result = run_cli("token", "create", "evil\nname\x1b[31m", config=config_file)
    listed = run_cli("token", "list", config=config_file)
    assert result.returncode == 1
    assert "control characters" in result.stderr
    assert "\x1b" not in result.stdout + result.stderr + listed.stdout
    assert "evil" not in listed.stdout


def test_token_list_escapes_stored_control(store):
    with store.write() as connection:
        connection.execute("INSERT INTO phone_tokens (name, token_hash, created_at) "
                           "VALUES (?, ?, ?)", ("old\x1b[31mname", "digest", 1.0))
    table = render_token_table(PhoneTokens(store).list())
    assert "\x1b" not in table
    assert "old\\x1b[31mname" in table
