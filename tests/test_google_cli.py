"""The auth, sync and status commands, run through the real CLI entry point."""

from __future__ import annotations

import io
import re

import requests

from appliance import cli
from appliance.sources.google import auth
from appliance.sources.google.commands import ProgressBar
from tests.google_fixtures import fake_google, google_config  # noqa: F401


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


class ConsentingStdin:
    """Stands in for the admin: opens the printed consent link and pastes the redirect."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys
        self.printed = ""

    def readline(self) -> str:
        self.printed = self.capsys.readouterr().out
        link = re.search(r"^\s+(http://127\.0\.0\.1:\d+/o/oauth2/auth\?\S+)$", self.printed,
                         re.MULTILINE).group(1)
        answer = requests.get(link, allow_redirects=False, timeout=5)
        return answer.headers["Location"] + "\n"


def test_cli_sync_reports_changes(fake_google, google_config, capsys):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    config = google_config()
    assert cli.main(["sync", "--config", str(config.path)]) == 0
    removed = fake_google.first_resource_names(1)[0]
    fake_google.delete_person(removed)
    fake_google.add_person("Alan", "Turing", numbers=["+44 20 7946 0002"])
    capsys.readouterr()
    assert cli.main(["sync", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Incremental sync ok in ")
    assert "1 added, 0 changed, 1 removed" in out
    assert "  + Alan Turing\n" in out
    assert "  - Ada Lovelace\n" in out


def test_cli_sync_dry_run_writes_nothing(fake_google, google_config, capsys):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    config = google_config()
    assert cli.main(["sync", "--dry-run", "--config", str(config.path)]) == 0
    assert cli.main(["status", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "(dry run: nothing was written)" in out
    assert "  + Ada Lovelace" in out
    assert "No sync has run yet." in out


def test_cli_sync_failure_exits_one(fake_google, google_config, capsys):
    config = google_config()
    fake_google.revoke_refresh_tokens()
    assert cli.main(["sync", "--config", str(config.path)]) == 1
    assert "invalid_grant" in capsys.readouterr().out


def test_cli_sync_without_google_explains(make_config, capsys):
    config = make_config()
    assert cli.main(["sync", "--config", str(config.path)]) == 1
    assert "Google is not set up" in capsys.readouterr().err


def test_cli_status_lists_runs(fake_google, google_config, capsys):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"], labels=["Staff"])
    config = google_config()
    cli.main(["sync", "--config", str(config.path)])
    capsys.readouterr()
    assert cli.main(["status", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "Google:               authorised" in out
    assert "Google labels:        Customers, Staff, Suppliers" in out
    assert re.search(r"full\s+ok\s+\S+\s+1\s+0\s+0", out)


def test_cli_auth_import_stores_credentials(fake_google, google_config, tmp_path, capsys):
    config = google_config(authorise=False)
    source = fake_google.authorised_user_file(tmp_path)
    assert cli.main(["auth", "--config", str(config.path), "--import", str(source)]) == 0
    assert auth.credentials_path(config).exists()
    assert "mode 0600" in capsys.readouterr().out


def test_cli_auth_import_bad_file_exits_two(google_config, tmp_path, capsys):
    config = google_config(authorise=False)
    source = tmp_path / "empty.json"
    source.write_text("{}")
    assert cli.main(["auth", "--config", str(config.path), "--import", str(source)]) == 2
    assert "lacks refresh_token" in capsys.readouterr().err


def test_cli_auth_consent_in_terminal(fake_google, google_config, tmp_path, capsys,
                                      monkeypatch):
    config = google_config(authorise=False, client_secrets=str(fake_google.client_file(tmp_path)))
    stdin = ConsentingStdin(capsys)
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main(["auth", "--config", str(config.path)]) == 0
    assert "Copy that whole address" in stdin.printed
    assert "Authorised." in capsys.readouterr().out
    assert auth.credentials_path(config).exists()


def test_progress_bar_silent_off_terminal():
    stream = io.StringIO()
    bar = ProgressBar(stream)
    bar("connections.list", 1000, 2500)
    bar.finish()
    assert stream.getvalue() == ""


def test_progress_bar_draws_on_terminal():
    stream = TerminalStream()
    bar = ProgressBar(stream)
    bar("connections.list", 1000, 2500)
    bar.finish()
    assert "[############..................] 1000/2500" in stream.getvalue()
