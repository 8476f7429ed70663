"""The import command: summary, exit status, and what it replaces in the store."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.events import Events
from appliance.sources.files import run_import
from appliance.sources.sample import load_sample_contacts
from appliance.store import Store

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
HEADER = ["First Name", "Last Name", "Organization Name", "Labels",
          "Phone 1 - Label", "Phone 1 - Value"]


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """Write (first name, last name, number) rows in the current Google layout."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for given, family, number in rows:
        writer.writerow([given, family, "", "* myContacts", "Mobile", number])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


ADA = ("Ada", "Lovelace", "+1 202 555 0101")
GRACE = ("Grace", "Hopper", "+1 202 555 0102")
ALAN = ("Alan", "Turing", "+1 202 555 0103")


class Recorder:
    """Subscriber that keeps every event it receives."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, **fields) -> None:
        self.events.append(fields)


class Run:
    """The output and exit status of one run_import call."""

    def __init__(self, status: int, out: str, err: str) -> None:
        self.status = status
        self.out = out
        self.err = err


@pytest.fixture
def config(make_config):
    return make_config()


@pytest.fixture
def store(config):
    store = Store.open(config.storage.data_dir)
    yield store
    store.close()


@pytest.fixture
def run(store, config):
    def do_run(path: Path, events: Events | None = None) -> Run:
        out, err = io.StringIO(), io.StringIO()
        status = run_import(store, config, path, out=out, err=err, events=events)
        return Run(status, out.getvalue(), err.getvalue())

    return do_run


def names_in(store: Store) -> list[str]:
    return sorted(contact.given_name for contact in store.load_contacts())


# -- a good file ------------------------------------------------------------------


def test_import_exits_zero(run, tmp_path):
    assert run(write_csv(tmp_path / "a.csv", [ADA, GRACE])).status == 0


def test_import_prints_summary(run, tmp_path):
    result = run(write_csv(tmp_path / "a.csv", [ADA, GRACE]))
    assert result.out.splitlines() == [
        "Read 2 entries from a.csv (Google Contacts CSV, current layout); skipped 0.",
        "Imported 2 contacts with 2 numbers.",
        "Directory: 2 added, 0 updated, 0 deleted since the previous import.",
    ]


def test_import_stores_contacts(run, store, tmp_path):
    run(write_csv(tmp_path / "a.csv", [ADA, GRACE]))
    assert store.count_by_source() == {"import": 2}


def test_import_keeps_parsed_numbers(run, store, tmp_path):
    run(write_csv(tmp_path / "a.csv", [ADA]))
    number = store.load_contacts()[0].numbers[0]
    assert (number.raw, number.e164) == ("+1 202 555 0101", "+12025550101")


def test_import_replaces_sample_contacts(run, store, config, tmp_path):
    store.replace_source("sample", load_sample_contacts(config), also_clear=())
    result = run(write_csv(tmp_path / "a.csv", [ADA]))
    assert store.count_by_source() == {"import": 1}
    assert "; 202 sample contacts removed." in result.out


def test_import_same_file_changes_nothing(run, tmp_path):
    path = write_csv(tmp_path / "a.csv", [ADA, GRACE])
    run(path)
    result = run(path)
    assert result.out.splitlines()[-1] == (
        "Directory: 0 added, 0 updated, 0 deleted since the previous import.")


def test_import_reports_added_updated_deleted(run, tmp_path):
    run(write_csv(tmp_path / "a.csv", [ADA, GRACE]))
    changed_ada = ("Ada", "Lovelace", "+1 202 555 0109")
    result = run(write_csv(tmp_path / "a.csv", [changed_ada, ALAN]))
    assert result.out.splitlines()[-1] == (
        "Directory: 1 added, 1 updated, 1 deleted since the previous import.")


def test_import_replaces_previous_import(run, store, tmp_path):
    run(write_csv(tmp_path / "a.csv", [ADA, GRACE]))
    run(write_csv(tmp_path / "b.csv", [ALAN]))
    assert names_in(store) == ["Alan"]


def test_import_vcard_file(run, store):
    assert run(DATA / "iphone-3.0.vcf").status == 0
    assert store.count_contacts() == 2


def test_import_sets_last_import_time(run, store, tmp_path):
    before = int(time.time())
    run(write_csv(tmp_path / "a.csv", [ADA]))
    assert int(store.get_state("import.last_at")) >= before


def test_import_emits_finished_event(run, tmp_path):
    events, recorder = Events(), Recorder()
    events.subscribe("import.finished", recorder)
    path = write_csv(tmp_path / "a.csv", [ADA, ("", "", "")])
    run(path, events=events)
    fields = recorder.events[0]
    del fields["run_id"]
    assert fields == {"path": str(path), "read": 2, "imported": 1, "skipped": 1,
                      "outcome": "ok"}


def test_import_event_has_run_id(run, tmp_path):
    events, recorder = Events(), Recorder()
    events.subscribe("import.finished", recorder)
    run(write_csv(tmp_path / "a.csv", [ADA]), events=events)
    assert len(recorder.events[0]["run_id"]) == 12


# -- skipped entries --------------------------------------------------------------


def test_import_lists_skipped_rows(run, tmp_path):
    result = run(write_csv(tmp_path / "a.csv", [ADA, ("Bob", "", ""), ("", "", "")]))
    assert result.out.splitlines()[1:4] == [
        "Skipped:",
        '  line 3: no phone number ("Bob")',
        "  line 4: no name and no number",
    ]


def test_import_counts_skipped_beyond_fifty(run, tmp_path):
    rows = [ADA] + [(f"Name{index}", "", "") for index in range(60)] + [("", "", "")] * 5
    result = run(write_csv(tmp_path / "a.csv", rows))
    assert "  and 15 more: 10 no phone number, 5 no name and no number" in result.out


# -- files that are not imported ----------------------------------------------------

BROKEN = [
    ("truncated.csv", b'First Name,Last Name,Labels\r\nAda,"Love', "line 2: a quoted cell"),
    ("outlook.csv", b"First Name,Last Name,Business Phone\r\nAda,L,1\r\n", "line 1: the header"),
    ("latin1.csv", b"First Name,Last Name,Labels\r\nRen\xe9e,M,\r\n", "line 2 is not UTF-8"),
    ("garbage.bin", bytes(range(256)) * 4, "NUL byte"),
    ("empty.csv", b"", "the file is empty"),
    ("cut.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada\r\n", "card 1 has no END:VCARD"),
]


@pytest.mark.parametrize(("name", "content", "message"), BROKEN)
def test_import_broken_file_exits_one(run, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert run(path).status == 1


@pytest.mark.parametrize(("name", "content", "message"), BROKEN)
def test_import_broken_file_says_where(run, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    assert message in run(path).err


@pytest.mark.parametrize(("name", "content", "message"), BROKEN)
def test_import_broken_file_changes_nothing(run, store, tmp_path, name, content, message):
    run(write_csv(tmp_path / "good.csv", [ADA, GRACE]))
    last_at = store.get_state("import.last_at")
    path = tmp_path / name
    path.write_bytes(content)
    run(path)
    assert names_in(store) == ["Ada", "Grace"]
    assert store.get_state("import.last_at") == last_at


def test_import_broken_file_message(run, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert run(path).err == (
        f"error: cannot import {path}: the file is empty. Export the contacts again as "
        "Google CSV or vCard. Nothing was imported, and the directory is unchanged.\n")


def test_import_missing_file_exits_one(run, tmp_path):
    result = run(tmp_path / "missing.csv")
    assert result.status == 1
    assert f"{tmp_path / 'missing.csv'} not found" in result.err


def test_import_no_numbers_exits_one(run, store, tmp_path):
    run(write_csv(tmp_path / "good.csv", [ADA]))
    result = run(write_csv(tmp_path / "a.csv", [("Bob", "", "")]))
    assert result.status == 1
    assert "no entry in" in result.err
    assert names_in(store) == ["Ada"]


def test_import_header_only_exits_one(run, tmp_path):
    assert run(write_csv(tmp_path / "a.csv", [])).status == 1


def test_import_failure_emits_error_event(run, tmp_path):
    events, recorder = Events(), Recorder()
    events.subscribe("import.finished", recorder)
    run(tmp_path / "missing.csv", events=events)
    assert recorder.events[0]["outcome"] == "error"


# -- large files ------------------------------------------------------------------


def test_import_five_thousand_rows(run, store, tmp_path):
    rows = [(f"Given{index}", f"Family{index}", f"+1 202 555 {index:04d}")
            for index in range(5000)]
    run(write_csv(tmp_path / "big.csv", rows))
    assert store.count_contacts() == 5000


# -- the command line -----------------------------------------------------------------


def run_command(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "import", "--config", str(config.path), *args],
        cwd=REPO, capture_output=True, text=True, timeout=60)


def test_command_imports_file(config, tmp_path):
    done = run_command(config, str(write_csv(tmp_path / "a.csv", [ADA])))
    assert done.returncode == 0
    assert "Imported 1 contact with 1 number." in done.stdout


def test_command_broken_file_no_traceback(config, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\x00\x01\x02")
    done = run_command(config, str(path))
    assert done.returncode == 1
    assert f"error: cannot import {path}: line 1 contains a NUL byte" in done.stderr
    assert "Traceback" not in done.stderr


def test_command_missing_file_creates_nothing(config, tmp_path):
    missing = tmp_path / "missing.csv"
    done = run_command(config, str(missing))
    assert done.returncode == 1
    assert f"{missing} not found" in done.stderr
    assert not config.storage.data_dir.exists()


@pytest.mark.parametrize("internal_digits, listed", [("0", False), ("2", True)])
def test_import_extension_alone_matches_phones(serve, tmp_path, internal_digits, listed):
    running = serve(dialplan={"internal_digits": internal_digits})
    path = write_csv(tmp_path / "contacts.csv", [ADA, ("Bob", "Desk", "ext 42")])
    out, err = io.StringIO(), io.StringIO()
    status = run_import(running.appliance.store, running.appliance.config, path, out=out,
                        err=err)
    browse = running.get("/directory/browse?group=d").text
    lookup = running.get("/lookup?number=42").text
    assert status == 0
    assert ("Imported 2 contacts" in out.getvalue()) is listed
    assert ('"ext 42" is an extension with no number before it' in out.getvalue()) is not listed
    assert ("Bob Desk" in browse) is listed
    assert ("<Telephone>42</Telephone>" in browse) is listed
    assert (lookup == "Bob Desk") is listed
