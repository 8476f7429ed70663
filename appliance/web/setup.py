"""The /setup page: Google authorisation, sync status and the "Sync now" button.

The consent runs in the admin's browser on any machine of the LAN: the page
hands out a consent link whose redirect goes to ``http://127.0.0.1:PORT/`` on
that machine, where nothing answers. The admin copies that address from the
browser's address bar into the form here, and the appliance exchanges the code.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import bottle

from appliance.errors import ApplianceError
from appliance.sources.google import auth
from appliance.sources.google.runs import recent_runs
from appliance.sources.google.sync import stored_labels
from appliance.web.admin_auth import render_page

if TYPE_CHECKING:
    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)

RUNS_SHOWN = 10
# Fixed notices chosen by the ?notice= value, so no request text is echoed.
NOTICES = {
    "sync-started": ("ok", "Sync started. Reload this page in a few seconds to see it."),
    "authorised": ("ok", "Google authorisation stored. The first sync has started."),
    "no-sync": ("bad", "Google is not set up, so there is nothing to sync."),
}
AUTHORISATION_TEXT = {
    "ok": ("ok", "authorised"),
    "needed": ("bad", "authorisation needed"),
    "not_configured": ("", "not configured"),
}


def _when(seconds: Any) -> str:
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(value))


class SetupPage:
    """Routes and state of /setup; the pending consent lives in memory."""

    def __init__(self, appliance: "Appliance") -> None:
        self.appliance = appliance
        self.config = appliance.config
        self.auth = appliance.admin_auth
        self._pending: auth.PendingConsent | None = None
        self._lock = threading.Lock()

    def register(self, app: bottle.Bottle) -> None:
        app.route("/setup", "GET", self.auth.require(self.show))
        app.route("/setup/consent", "POST", self.auth.require(self.start_consent))
        app.route("/setup/redirect", "POST", self.auth.require(self.finish_consent))
        app.route("/setup/sync", "POST", self.auth.require(self.sync_now))

    # -- actions -------------------------------------------------------------------

    def start_consent(self) -> str:
        self.auth.check_csrf()
        try:
            pending = auth.start_consent(self.config)
        except ApplianceError as error:
            return self.show(error=str(error))
        with self._lock:
            self._pending = pending
        logger.info("google consent link made")
        return self.show()

    def finish_consent(self) -> str:
        self.auth.check_csrf()
        with self._lock:
            pending = self._pending
        if pending is None or pending.is_expired:
            return self.show(error="The consent link has expired or was never opened. Start "
                                   "the authorisation again.")
        pasted = bottle.request.forms.getunicode("redirect_url") or ""
        try:
            auth.finish_consent(self.config, pending, pasted)
        except ApplianceError as error:
            logger.warning("google consent failed", extra={"error": str(error)})
            return self.show(error=str(error))
        with self._lock:
            self._pending = None
        self._trigger_sync()
        bottle.redirect("/setup?notice=authorised", 303)

    def sync_now(self) -> None:
        self.auth.check_csrf()
        logger.info("sync requested by admin", extra={
            "client": bottle.request.environ.get("appliance.client_address", "")})
        notice = "sync-started" if self._trigger_sync() else "no-sync"
        bottle.redirect(f"/setup?notice={notice}", 303)

    def _trigger_sync(self) -> bool:
        scheduler = self.appliance.sync_scheduler
        if scheduler is None:
            return False
        scheduler.trigger(request_id=bottle.request.environ.get("appliance.request_id"))
        return True

    # -- the page ------------------------------------------------------------------

    def show(self, error: str = "") -> str:
        bottle.response.set_header("Cache-Control", "no-store")
        notice = NOTICES.get(bottle.request.query.get("notice", ""))
        parts = []
        if notice:
            parts.append(f'<p class="{notice[0]}">{html.escape(notice[1])}</p>')
        if error:
            parts.append(f'<p class="bad">{html.escape(error)}</p>')
        parts.append('<p><a href="/admin">Admin pages</a>: status, phone tokens, phone '
                     "preview and phone config.</p>")
        parts += [self._status(), self._authorisation(), self._runs(), self._logout()]
        return render_page("Setup", "".join(parts))

    def _status(self) -> str:
        store = self.appliance.store
        state = store.get_state("google.authorisation") or "not_configured"
        css, text = AUTHORISATION_TEXT.get(state, ("", state))
        failures = store.get_state("sync.consecutive_failures", "0")
        last_error = store.get_state("sync.last_error", "") or ""
        counts = store.count_by_source()

        rows = [
            ("Google", f'<span class="{css}">{html.escape(text)}</span>'),
            ("Authorisation path", html.escape(self._path_text())),
            ("Last sync attempt", _when(store.get_state("sync.last_attempt_at"))),
            ("Last successful sync", _when(store.get_state("sync.last_success_at"))),
            ("Failures in a row", html.escape(failures or "0")),
            ("Contacts", html.escape(", ".join(f"{source}: {count}" for source, count in
                                               counts.items()) or "none")),
            ("Google labels", html.escape(", ".join(stored_labels(store)) or "none")),
        ]
        if last_error:
            rows.append(("Last error", f'<span class="bad">{html.escape(last_error)}</span>'))
        sync = self.appliance.google_sync
        if sync is not None and sync.is_running:
            rows.append(("Now", "a sync is running"))
        table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)

        note = ""
        if state == "needed":
            note = ('<p class="bad">Google authorisation needed: the phones still get the '
                    "contacts of the last successful sync, but nothing new arrives until "
                    "Google is authorised again below.</p>")
        button = (f'<form method="post" action="/setup/sync">{self.auth.csrf_field()}'
                  '<button type="submit">Sync now</button></form>'
                  if self.appliance.sync_scheduler is not None else "")
        return f"<h2>Status</h2>{note}<table>{table}</table>{button}"

    def _path_text(self) -> str:
        if auth.uses_service_account(self.config):
            return f"Workspace service account acting as {self.config.google.subject}"
        if auth.credentials_path(self.config).exists():
            return "OAuth authorisation stored on the appliance"
        if self.config.google.client_secrets is not None:
            return "OAuth client set, not authorised yet"
        return "none"

    def _authorisation(self) -> str:
        if auth.uses_service_account(self.config):
            return ("<h2>Authorisation</h2><p>The Workspace service account in "
                    "<code>[google] service_account_key</code> is used; nothing to do here.</p>")
        if self.config.google.client_secrets is None:
            return ("<h2>Authorisation</h2><p class=\"note\">No OAuth client is set. Create a "
                    "Desktop app OAuth client in Google Cloud Console, copy its JSON file to "
                    "the appliance and set <code>[google] client_secrets</code> to its path, "
                    "then restart. The Google page of the documentation walks through it; "
                    "<code>python -m appliance auth --import FILE</code> and a Workspace "
                    "service account are the other ways in.</p>")
        with self._lock:
            pending = self._pending
        start = (f'<form method="post" action="/setup/consent">{self.auth.csrf_field()}'
                 '<button type="submit">Start Google authorisation</button></form>')
        if pending is None or pending.is_expired:
            return f"<h2>Authorisation</h2>{start}"
        return (
            "<h2>Authorisation</h2><ol>"
            f'<li><a href="{html.escape(pending.url)}" target="_blank" rel="noopener '
            'noreferrer">Open the Google consent page</a>, sign in with the account whose '
            "contacts the phones should show, and allow access.</li>"
            "<li>Google then sends the browser to an address starting with "
            f"<code>{html.escape(pending.redirect_uri)}</code> that does not load. Copy the "
            "whole address from the address bar and paste it here:</li></ol>"
            f'<form method="post" action="/setup/redirect">{self.auth.csrf_field()}'
            '<input type="text" name="redirect_url" placeholder="http://127.0.0.1:..." '
            'autocomplete="off" required><button type="submit">Finish authorisation</button>'
            f"</form><p>Or start over:</p>{start}")

    def _runs(self) -> str:
        runs = recent_runs(self.appliance.store, RUNS_SHOWN)
        if not runs:
            return "<h2>Recent syncs</h2><p>No sync has run yet.</p>"
        rows = []
        for run in runs:
            css = "bad"
            if run.outcome == "ok":
                css = "ok"
            elif run.outcome == "running":
                css = ""
            duration = "" if run.duration_s is None else f"{run.duration_s:.1f} s"
            rows.append(
                f"<tr><td>{_when(run.started_at)}</td><td>{html.escape(run.kind)}</td>"
                f'<td class="{css}">{html.escape(run.outcome)}</td><td>{duration}</td>'
                f"<td>+{run.added} ~{run.updated} -{run.deleted}</td>"
                f"<td>{html.escape(run.error)}</td></tr>")
        head = ("<tr><th>Started</th><th>Kind</th><th>Outcome</th><th>Took</th>"
                "<th>Changes</th><th>Error</th></tr>")
        return f"<h2>Recent syncs</h2><table>{head}{''.join(rows)}</table>"

    def _logout(self) -> str:
        return (f'<form method="post" action="/logout">{self.auth.csrf_field()}'
                '<button type="submit">Log out</button></form>')


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    """Add the admin login routes and /setup to ``app``."""
    appliance.admin_auth.register(app)
    SetupPage(appliance).register(app)
