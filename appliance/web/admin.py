"""Admin pages: status, phone tokens, and the links to the phone preview and config.

Every page needs the admin login (``AdminAuth.require``), every form that changes
something carries the session's CSRF token, and every change is logged at INFO
with the admin's client address. The pages are
self-contained HTML with inline CSS and no scripts, like the health page.
"""

from __future__ import annotations

import html
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bottle

from appliance.logs import ERRORS_LOG
from appliance.sources.google.runs import recent_runs, run_changes
from appliance.web.admin_auth import render_page

if TYPE_CHECKING:
    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)

RUNS_SHOWN = 10
ERRORS_SHOWN = 10
NAMES_SHOWN = 20
# Bytes read from the end of errors.log for the status page.
ERRORS_TAIL_BYTES = 64 * 1024

NAVIGATION = (("/admin", "Status"), ("/admin/preview", "Phone preview"),
              ("/admin/phone-config", "Phone config"), ("/admin/tokens", "Phone tokens"),
              ("/setup", "Google setup"))


def when(seconds: Any) -> str:
    """Render Unix seconds as local time, or ``never``."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def admin_page(auth, title: str, body: str) -> str:
    """Wrap ``body`` in the admin layout with the navigation and a logout button."""
    links = " | ".join(f'<a href="{path}">{html.escape(name)}</a>' for path, name in NAVIGATION)
    logout = (f'<form method="post" action="/logout">{auth.csrf_field()}'
              '<button type="submit">Log out</button></form>')
    bottle.response.set_header("Cache-Control", "no-store")
    return render_page(title, f"<nav>{links}</nav>{body}{logout}")


def client_address() -> str:
    """Return the address of the admin making this request, for the log."""
    environ = bottle.request.environ
    return str(environ.get("appliance.client_address") or environ.get("REMOTE_ADDR", ""))


def table(head: list[str], rows: list[list[str]]) -> str:
    """Render a table, with a header row when ``head`` is not empty; cells are HTML
    that the caller has escaped."""
    header = "".join(f"<th>{html.escape(name)}</th>" for name in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>" if header else f"<table>{body}</table>"


def read_recent_errors(log_dir: Path, limit: int = ERRORS_SHOWN) -> list[dict[str, Any]]:
    """Return the newest JSON records of ``errors.log``, newest first.

    Lines that are not JSON (the text log format) are returned as their message.
    A missing or unreadable file gives an empty list.
    """
    path = Path(log_dir) / ERRORS_LOG
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - ERRORS_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > ERRORS_TAIL_BYTES:
        lines = lines[1:]  # the first line may start mid-record
    records = []
    for line in reversed(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = {"message": line}
        if isinstance(record, dict):
            records.append(record)
        if len(records) >= limit:
            break
    return records


class AdminPages:
    """The /admin status page and the phone token pages."""

    def __init__(self, appliance: "Appliance") -> None:
        self.appliance = appliance
        self.auth = appliance.admin_auth

    def register(self, app: bottle.Bottle) -> None:
        require = self.auth.require
        app.route("/admin", "GET", require(self.status))
        app.route("/admin/tokens", "GET", require(self.tokens_page))
        app.route("/admin/tokens", "POST", require(self.create_token))
        app.route("/admin/tokens/<token_id:int>/revoke", "POST", require(self.revoke_token))

    # -- status ------------------------------------------------------------------------

    def status(self) -> str:
        return admin_page(self.auth, "Status", self._contacts() + self._syncs() +
                          self._errors())

    def _contacts(self) -> str:
        store = self.appliance.store
        counts = store.count_by_source()
        rows = [[html.escape(source), str(count)] for source, count in counts.items()]
        rows.append(["<b>all</b>", f"<b>{sum(counts.values())}</b>"])
        facts = [
            ["Numbers", str(store.count_numbers())],
            ["Last import", when(store.get_state("import.last_at"))],
            ["Last sync attempt", when(store.get_state("sync.last_attempt_at"))],
            ["Last successful sync", when(store.get_state("sync.last_success_at"))],
            ["Google authorisation",
             html.escape(store.get_state("google.authorisation") or "not_configured")],
            ["Phone URL", html.escape(self.appliance.base_url + "/directory")],
        ]
        return ("<h2>Contacts</h2>" + table(["Source", "Contacts"], rows) +
                table([], facts))

    def _syncs(self) -> str:
        runs = recent_runs(self.appliance.store, RUNS_SHOWN)
        if not runs:
            return "<h2>Recent syncs</h2><p>No sync has run yet.</p>"
        rows = []
        for run in runs:
            changes = run_changes(self.appliance.store, run.run_id)
            rows.append([
                when(run.started_at), html.escape(run.kind),
                f'<span class="{"ok" if run.outcome == "ok" else "bad"}">'
                f"{html.escape(run.outcome)}</span>",
                f"+{run.added} ~{run.updated} -{run.deleted}",
                _change_report(changes, run),
                html.escape(run.error)])
        return "<h2>Recent syncs</h2>" + table(
            ["Started", "Kind", "Outcome", "Changes", "Who", "Error"], rows)

    def _errors(self) -> str:
        store = self.appliance.store
        parts = ["<h2>Last errors</h2>"]
        last_error = store.get_state("sync.last_error") or ""
        if last_error:
            parts.append(f'<p class="bad">Last sync error: {html.escape(last_error)}</p>')
        records = read_recent_errors(Path(self.appliance.config.logging.dir))
        if not records:
            parts.append("<p>No errors in the error log.</p>")
            return "".join(parts)
        rows = [[html.escape(str(record.get("timestamp", ""))),
                 html.escape(str(record.get("logger", ""))),
                 html.escape(str(record.get("message", ""))),
                 html.escape(str(record.get("error", "")))[:300],
                 html.escape(str(record.get("request_id") or record.get("run_id") or ""))]
                for record in records]
        parts.append(table(["Time", "Logger", "Message", "Error", "Request or run"], rows))
        return "".join(parts)

    # -- phone tokens --------------------------------------------------------------------

    def tokens_page(self, created: tuple[Any, str] | None = None, error: str = "") -> str:
        tokens = self.appliance.tokens
        parts = []
        if error:
            parts.append(f'<p class="bad">{html.escape(error)}</p>')
        if created is not None:
            record, token = created
            url = f"{self.appliance.base_url}/directory?token={token}"
            parts.append(
                f'<div class="note"><p class="ok">Token {record.id} '
                f'"{html.escape(record.name)}" created. Copy it now: it is not shown '
                f"again.</p><p><code>{html.escape(token)}</code></p><p>Directory URL for "
                f"this phone: <code>{html.escape(url)}</code></p>"
                f'<p><a href="/admin/phone-config?token={html.escape(token)}">Make the phone '
                "config with this token</a></p></div>")
        required = self.appliance.config.phones.require_token
        parts.append("<p>Tokens are " + ("<b>required</b>" if required else
                     "optional (<code>[phones] require_token = no</code>)") +
                     " on this appliance.</p>")
        parts.append(f'<form method="post" action="/admin/tokens">{self.auth.csrf_field()}'
                     '<label>Name, such as the phone\'s SEP name or desk<br>'
                     '<input type="text" name="name" maxlength="64" required></label>'
                     '<button type="submit">Create token</button></form>')
        parts.append(self._token_table(tokens.list()))
        return admin_page(self.auth, "Phone tokens", "".join(parts))

    def _token_table(self, records: list) -> str:
        if not records:
            return "<p>No tokens yet.</p>"
        rows = []
        for record in records:
            if record.is_revoked:
                action = f"revoked {when(record.revoked_at)}"
            else:
                action = (f'<form method="post" action="/admin/tokens/{record.id}/revoke">'
                          f'{self.auth.csrf_field()}<button type="submit">Revoke</button>'
                          "</form>")
            uses = self.appliance.tokens.recent_uses(record.id, limit=5)
            detail = "<br>".join(f"{html.escape(day)} {html.escape(client)}: {count}"
                                 for day, client, count, _ in uses) or "-"
            rows.append([str(record.id), html.escape(record.name), when(record.created_at),
                         when(record.last_used_at), str(record.uses),
                         html.escape(record.last_client or "-"), detail, action])
        return table(["ID", "Name", "Created", "Last used", "Uses", "Last client",
                      "Recent days", ""], rows)

    def create_token(self) -> str:
        self.auth.check_csrf()
        name = bottle.request.forms.getunicode("name") or ""
        try:
            record, token = self.appliance.tokens.create(name, client=client_address())
        except ValueError as error:
            bottle.response.status = 400
            return self.tokens_page(error=str(error))
        return self.tokens_page(created=(record, token))

    def revoke_token(self, token_id: int) -> None:
        self.auth.check_csrf()
        try:
            self.appliance.tokens.revoke(token_id, client=client_address())
        except LookupError as error:
            bottle.abort(404, str(error))
        bottle.redirect("/admin/tokens", 303)


def _change_report(changes: dict[str, list[str]], run) -> str:
    """Render who a run added, updated and deleted, as far as the store kept names."""
    parts = []
    for change, sign, total in (("added", "+", run.added), ("updated", "~", run.updated),
                                ("deleted", "-", run.deleted)):
        names = changes.get(change, [])
        if not names:
            continue
        shown = ", ".join(html.escape(name) for name in names[:NAMES_SHOWN])
        more = total - min(len(names), NAMES_SHOWN)
        if more > 0:
            shown += f" and {more} more"
        parts.append(f"{sign} {shown}")
    return "<br>".join(parts) or "-"


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    """Add the admin status and token pages, the phone preview and the config generator."""
    from appliance.web import phone_tools

    AdminPages(appliance).register(app)
    phone_tools.register(app, appliance)
