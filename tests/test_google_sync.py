"""The Google sync against the fake Google: paging, changes, faults, atomicity."""

from __future__ import annotations

import json
import os
import stat

import pytest

from appliance import context
from appliance.sources.google import auth
from appliance.sources.google.runs import KEEP_RUNS, recent_runs, record_start
from appliance.sources.google.sync import CONNECTIONS, PERSON_FIELDS, stored_labels
from tests.google_fixtures import fake_google, google_config, google_sync  # noqa: F401


def names_in_store(store) -> set[str]:
    return {contact.display_name for contact in store.load_contacts(["google"])}


def test_sync_full_2500_contacts_three_pages(fake_google, google_sync):
    for index in range(2500):
        fake_google._add_generated("connections", index)
    sync, log = google_sync()
    result = sync.run()
    calls = fake_google.calls("connections.list")
    assert result.outcome == "ok"
    assert result.kind == "full"
    assert len(calls) == 3
    assert sync.store.count_by_source() == {"google": 2500}
    assert result.counts == {"added": 2500, "updated": 0, "deleted": 0}
    assert sync.store.get_state(CONNECTIONS.token_key)


def test_sync_full_sends_documented_parameters(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync()
    sync.run()
    query = fake_google.calls("connections.list")[0]["query"]
    assert query["personFields"] == [PERSON_FIELDS]
    assert query["pageSize"] == ["1000"]
    assert query["requestSyncToken"] == ["true"]
    assert "syncToken" not in query


def test_sync_incremental_add_change_delete(fake_google, google_sync):
    kept = fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    changed = fake_google.add_person("Alan", "Turing", numbers=["+44 20 7946 0002"])
    removed = fake_google.add_person("Grace", "Hopper", numbers=["+1 650 555 0100"])
    sync, _ = google_sync()
    sync.run()

    fake_google.update_person(changed, family="Turing-Smith")
    fake_google.delete_person(removed)
    fake_google.add_person("Edsger", "Dijkstra", numbers=["+31 20 555 0100"])
    result = sync.run()

    assert result.kind == "incremental"
    assert [change.name for change in result.added] == ["Edsger Dijkstra"]
    assert [change.name for change in result.updated] == ["Alan Turing-Smith"]
    assert [change.name for change in result.deleted] == ["Grace Hopper"]
    assert names_in_store(sync.store) == {"Ada Lovelace", "Alan Turing-Smith",
                                          "Edsger Dijkstra"}
    assert "syncToken" in fake_google.calls("connections.list")[-1]["query"]
    assert kept in {c.source_id for c in sync.store.load_contacts(["google"])}


def test_sync_incremental_rekeys_renamed_person(fake_google, google_sync):
    old_name = fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync()
    sync.run()
    new_name = fake_google.rename_person(old_name)
    result = sync.run()
    ids = {contact.source_id for contact in sync.store.load_contacts(["google"])}
    assert ids == {new_name}
    assert result.counts == {"added": 0, "updated": 0, "deleted": 0}


def test_sync_incremental_drops_person_without_numbers(fake_google, google_sync):
    person = fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync()
    sync.run()
    fake_google.update_person(person, numbers=[])
    result = sync.run()
    assert [change.name for change in result.deleted] == ["Ada Lovelace"]
    assert sync.store.count_contacts() == 0


@pytest.mark.parametrize("status", [400, 410])
def test_sync_expired_token_runs_full_sync(fake_google, google_sync, status):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync()
    sync.run()
    fake_google.expired_status = status
    fake_google.expire_sync_tokens()
    fake_google.add_person("Alan", "Turing", numbers=["+44 20 7946 0002"])
    result = sync.run()
    last_two = [call["query"] for call in fake_google.calls("connections.list")[-2:]]
    assert result.outcome == "ok"
    assert result.kind == "full"
    assert "syncToken" in last_two[0]
    assert "syncToken" not in last_two[1]
    assert [change.name for change in result.added] == ["Alan Turing"]


def test_sync_changed_parameters_drop_token(fake_google, google_sync, google_config):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"], labels=["Staff"])
    sync, _ = google_sync()
    sync.run()
    sync.config = google_config(authorise=False, labels_include="Suppliers")
    result = sync.run()
    assert result.kind == "full"
    assert "syncToken" not in fake_google.calls("connections.list")[-1]["query"]
    assert sync.store.count_contacts() == 0


def test_sync_429_then_success(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    fake_google.add_fault("connections.list", status=429, retry_after="0")
    sync, log = google_sync()
    result = sync.run()
    assert result.outcome == "ok"
    assert len(fake_google.calls("connections.list")) == 2
    assert log.named("google.retry") == [{"method": "connections.list", "reason": "429"}]


def test_sync_honours_retry_after_seconds(fake_google, google_sync, google_config):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    fake_google.add_fault("connections.list", status=503, retry_after="1")
    sync, _ = google_sync(google_config(retry_max_delay_seconds="5"))
    sync.run()
    first, second = fake_google.calls("connections.list")[:2]
    assert second["at"] - first["at"] >= 0.9


@pytest.mark.parametrize("fault", [
    {"status": 500}, {"status": 502}, {"status": 503}, {"malformed": True},
])
def test_sync_retries_transient_fault(fake_google, google_sync, fault):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    fake_google.add_fault("connections.list", times=2, **fault)
    sync, _ = google_sync()
    result = sync.run()
    assert result.outcome == "ok"
    assert len(fake_google.calls("connections.list")) == 3


def test_sync_slow_answer_times_out_and_retries(fake_google, google_sync, google_config):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    fake_google.add_fault("connections.list", delay_s=1.5)
    sync, log = google_sync(google_config(request_timeout_seconds="1"))
    result = sync.run()
    assert result.outcome == "ok"
    assert log.named("google.retry")[0]["reason"] == "timeout"


def test_sync_gives_up_after_max_attempts(fake_google, google_sync, google_config):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync(google_config(max_attempts="3"))
    sync.run()
    fake_google.add_person("Alan", "Turing", numbers=["+44 20 7946 0002"])
    fake_google.add_fault("connections.list", status=503, times=10)
    result = sync.run()
    assert result.outcome == "error"
    assert "after 3 attempts" in result.error
    assert len(fake_google.calls("connections.list")) == 1 + 3
    assert names_in_store(sync.store) == {"Ada Lovelace"}
    assert sync.store.get_state("sync.consecutive_failures") == "1"


def test_sync_401_refreshes_token_once(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, log = google_sync()
    sync.run()
    fake_google.expire_access_tokens()  # the stored access token now gets 401
    calls_before = len(log.named("google.call"))
    result = sync.run()
    statuses = [call["status"] for call in log.named("google.call")[calls_before:]]
    assert result.outcome == "ok"
    assert statuses == [401, 200, 200]
    assert log.named("google.token_refresh")[-1] == {"outcome": "ok"}


def test_sync_invalid_grant_needs_authorisation(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, log = google_sync()
    sync.run()
    fake_google.revoke_refresh_tokens()
    fake_google.expire_access_tokens()
    result = sync.run()
    assert result.outcome == "error"
    assert "invalid_grant" in result.error
    assert sync.store.get_state("google.authorisation") == "needed"
    assert log.named("google.authorisation")[-1]["authorised"] is False
    assert names_in_store(sync.store) == {"Ada Lovelace"}


def test_sync_rewrites_credentials_after_refresh(fake_google, google_sync, google_config):
    config = google_config()
    path = auth.credentials_path(config)
    before = json.loads(path.read_text())
    sync, _ = google_sync(config)
    sync.run()
    after = json.loads(path.read_text())
    assert "token" not in before
    assert after["token"].startswith("ya29.fake-")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_sync_sends_run_id_as_request_id(fake_google, google_sync):
    sync, _ = google_sync()
    result = sync.run()
    headers = fake_google.calls("connections.list")[0]["headers"]
    assert headers["X-Request-ID"] == result.run_id


def test_sync_sends_given_request_id(fake_google, google_sync):
    sync, _ = google_sync()
    sync.run(request_id="req-123")
    headers = fake_google.calls("contactGroups.list")[0]["headers"]
    assert headers["X-Request-ID"] == "req-123"


def test_sync_started_by_request_keeps_its_id(fake_google, google_sync):
    sync, _ = google_sync()
    seen: list[tuple[str | None, str | None]] = []
    sync.events.subscribe("sync.started", lambda **fields: seen.append(
        (context.request_id.get(), context.run_id.get())))
    result = sync.run(request_id="req-456")
    assert seen == [("req-456", result.run_id)]
    assert context.request_id.get() is None


def test_sync_dry_run_writes_nothing(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync()
    result = sync.run(dry_run=True)
    assert [change.name for change in result.added] == ["Ada Lovelace"]
    assert sync.store.count_by_source() == {}
    assert sync.store.get_state(CONNECTIONS.token_key) is None
    assert recent_runs(sync.store) == []


def test_sync_removes_sample_contacts(fake_google, google_sync):
    from appliance.model import Contact, PhoneNumber

    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync()
    sync.store.replace_source("sample", [Contact("sample", "1", given_name="Sam",
                                                 numbers=[PhoneNumber("+1 555 0100")])])
    sync.run()
    assert sync.store.count_by_source() == {"google": 1}


def test_sync_labels_include_and_exclude(fake_google, google_sync, google_config):
    fake_google.add_person("Ada", "Staff", numbers=["+1 650 555 0101"], labels=["Staff"])
    fake_google.add_person("Bob", "Both", numbers=["+1 650 555 0102"],
                           labels=["Staff", "Suppliers"])
    fake_google.add_person("Cy", "None", numbers=["+1 650 555 0103"])
    sync, _ = google_sync(google_config(labels_include="staff", labels_exclude="Suppliers"))
    sync.run()
    contacts = sync.store.load_contacts(["google"])
    assert [contact.display_name for contact in contacts] == ["Ada Staff"]
    assert contacts[0].labels == ["Staff"]
    assert stored_labels(sync.store) == ["Customers", "Staff", "Suppliers"]


def test_sync_label_rename_forces_full_sync(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+1 650 555 0101"], labels=["Staff"])
    sync, _ = google_sync()
    sync.run()
    fake_google.groups[fake_google.label_resource("Staff")] = "Team"
    result = sync.run()
    assert result.kind == "full"
    assert sync.store.load_contacts(["google"])[0].labels == ["Team"]


def test_sync_other_contacts_and_directory(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+1 650 555 0101"])
    fake_google.add_person("Otto", "Other", numbers=["+1 650 555 0102"], chain="other")
    fake_google.add_person("Dora", "Directory", numbers=["+1 650 555 0103"],
                           chain="directory")
    sync, _ = google_sync(other_contacts="yes", workspace_directory="yes")
    result = sync.run()
    assert result.outcome == "ok"
    assert sync.store.count_by_source() == {"google": 1, "google-directory": 1,
                                            "google-other": 1}


def test_sync_disabled_source_is_removed(fake_google, google_sync, google_config):
    fake_google.add_person("Otto", "Other", numbers=["+1 650 555 0102"], chain="other")
    sync, _ = google_sync(other_contacts="yes")
    sync.run()
    sync.config = google_config(authorise=False)
    result = sync.run()
    assert [change.name for change in result.deleted] == ["Otto Other"]
    assert sync.store.count_by_source() == {}


def test_sync_other_contacts_need_scope(fake_google, google_sync, google_config, tmp_path):
    config = google_config(authorise=False, other_contacts="yes")
    narrow = fake_google.authorised_user_file(tmp_path, scopes={auth.SCOPE_CONTACTS})
    auth.import_authorised_user(config, narrow)
    sync, _ = google_sync(config)
    result = sync.run()
    assert result.outcome == "error"
    assert "403" in result.error


def test_sync_runs_keep_newest_hundred(fake_google, google_sync):
    sync, _ = google_sync()
    for number in range(KEEP_RUNS + 2):
        record_start(sync.store, f"old-{number}", "full", float(number))
    result = sync.run()
    runs = recent_runs(sync.store)
    assert len(runs) == KEEP_RUNS
    assert runs[0].run_id == result.run_id
    assert runs[-1].run_id == "old-3"
    assert runs[1].outcome == "interrupted"


def test_sync_records_run_and_state(fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+1 650 555 0101"])
    sync, log = google_sync()
    result = sync.run()
    run = recent_runs(sync.store)[0]
    finished = log.named("sync.finished")[0]
    assert (run.run_id, run.kind, run.outcome, run.added) == (result.run_id, "full", "ok", 1)
    assert sync.store.get_state("sync.last_success_at")
    assert sync.store.get_state("sync.consecutive_failures") == "0"
    assert sync.store.get_state("sync.last_error") == ""
    assert sync.store.get_state("google.authorisation") == "ok"
    assert finished["outcome"] == "ok"
    assert finished["added"] == 1


def test_sync_without_credentials_needs_authorisation(google_sync, google_config):
    sync, _ = google_sync(google_config(authorise=False))
    result = sync.run()
    assert result.outcome == "error"
    assert sync.store.get_state("google.authorisation") == "needed"
