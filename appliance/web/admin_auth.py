"""Admin login for /setup and the other admin pages: password, session, CSRF.

The password is checked against ``[admin] password_hash``, a salted scrypt (or
PBKDF2) hash made by ``python -m appliance hash-password``. A login starts a
session kept in memory, so a restart logs every admin out. The session cookie
is HttpOnly and SameSite=Strict (and Secure behind https), and every form
carries the session's CSRF token, checked on each POST. With no password hash
set, every admin page explains how to set one and does nothing else.

Usage in an admin route module::

    auth = appliance.admin_auth
    @app.get("/setup")
    @auth.require
    def setup_page(): ...
    # in a form: auth.csrf_field(); in a POST handler: auth.check_csrf()
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, urlsplit

import bottle

from appliance.config import Config

logger = logging.getLogger(__name__)

SESSION_COOKIE = "phonebook_admin"
LOGIN_COOKIE = "phonebook_login"
CSRF_FIELD = "csrf_token"
MIN_PASSWORD_LENGTH = 8

# scrypt cost: 16 MiB of memory and about 60 ms per check on a desktop CPU
# (measured with Python 3.11), a few hundred ms on a Raspberry Pi.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PBKDF2_ITERATIONS = 600_000
# Failed logins from one address before it must wait, and the window and wait.
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60
MAX_SESSIONS = 100


# ---------------------------------------------------------------------------
# Password hashes.


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of ``password`` for ``[admin] password_hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_password_pbkdf2(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Return a salted PBKDF2-SHA256 hash, for Pythons built without scrypt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Tell whether ``password`` matches a hash from ``hash_password``; False when malformed."""
    try:
        scheme, *fields = encoded.split("$")
        if scheme == "scrypt" and len(fields) == 5:
            n, r, p = (int(value) for value in fields[:3])
            salt, expected = base64.b64decode(fields[3]), base64.b64decode(fields[4])
            actual = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                                    dklen=len(expected), maxmem=2 * 128 * r * (n + p + 2))
        elif scheme == "pbkdf2_sha256" and len(fields) == 3:
            iterations = int(fields[0])
            salt, expected = base64.b64decode(fields[1]), base64.b64decode(fields[2])
            actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# ---------------------------------------------------------------------------
# Pages.

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;"
          "padding:0 1rem;line-height:1.45;color:#222}"
          "h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.8rem}"
          "table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;"
          "border-bottom:1px solid #ddd}.ok{color:#176317}.bad{color:#a30f0f;font-weight:600}"
          ".note{background:#f4f4f4;padding:.6rem .9rem;border-radius:4px}"
          "input[type=text],input[type=password]{width:100%;padding:.4rem}"
          "button{padding:.4rem 1rem;margin-top:.4rem}code{background:#f4f4f4;padding:0 .2rem}")


def render_page(title: str, body: str) -> str:
    """Wrap admin page ``body`` (HTML, already escaped) in the shared layout."""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} - Phonebook Appliance</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")


LOCKED_BODY = (
    "<p class=\"bad\">The admin pages are locked because no admin password is set.</p>"
    "<p>On the appliance, run</p><pre>python -m appliance hash-password</pre>"
    "<p>(or <code>phonebook-appliance hash-password</code> with the one-file binary), "
    "type the new password twice, and put the printed line into the config file:</p>"
    "<pre>[admin]\npassword_hash = scrypt$...</pre>"
    "<p>Then restart the appliance and open this page again.</p>")


# ---------------------------------------------------------------------------
# Sessions.


@dataclass
class _Session:
    csrf_token: str
    expires_at: float


class AdminAuth:
    """Logins, sessions and CSRF tokens for the admin pages of one appliance."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.password_hash: str = config.admin.password_hash
        self.session_s = config.admin.session_minutes * 60
        self._clock = clock
        self._lock = threading.Lock()
        # Keyed by the SHA-256 of the cookie value, so memory keeps no usable cookie.
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._failures: dict[str, list[float]] = {}

    @property
    def is_configured(self) -> bool:
        return bool(self.password_hash)

    # -- routes ---------------------------------------------------------------------

    def register(self, app: bottle.Bottle) -> None:
        """Add ``/login`` (GET, POST) and ``/logout`` (POST) to ``app``."""
        app.route("/login", "GET", self._login_page)
        app.route("/login", "POST", self._login_submit)
        app.route("/logout", "POST", self._logout)

    def require(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap an admin route: locked page, login redirect, or the handler."""

        @functools.wraps(handler)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not self.is_configured:
                bottle.response.status = 403
                return render_page("Admin password not set", LOCKED_BODY)
            if self._current() is None:
                target = bottle.request.fullpath
                if bottle.request.method != "GET":
                    target = "/setup"
                bottle.redirect(f"/login?next={quote(target)}", 303)
            return handler(*args, **kwargs)

        return guarded

    def csrf_token(self) -> str:
        session = self._current()
        return session.csrf_token if session else ""

    def csrf_field(self) -> str:
        """Return the hidden form field with this session's CSRF token."""
        return (f'<input type="hidden" name="{CSRF_FIELD}" '
                f'value="{html.escape(self.csrf_token())}">')

    def check_csrf(self) -> None:
        """Abort with 403 unless the POSTed CSRF token matches the session's."""
        session = self._current()
        sent = bottle.request.forms.get(CSRF_FIELD) or ""
        if session is None or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            logger.warning("admin form refused", extra={"reason": "csrf token mismatch"})
            bottle.abort(403, "The form has expired. Reload the page and try again.")

    # -- session handling -------------------------------------------------------------

    def _current(self) -> _Session | None:
        cookie = bottle.request.get_cookie(SESSION_COOKIE)
        if not cookie:
            return None
        key = hashlib.sha256(cookie.encode()).hexdigest()
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if session.expires_at < now:
                del self._sessions[key]
                return None
            session.expires_at = now + self.session_s
            return session

    def _start_session(self) -> None:
        cookie = secrets.token_urlsafe(32)
        key = hashlib.sha256(cookie.encode()).hexdigest()
        with self._lock:
            self._sessions[key] = _Session(secrets.token_urlsafe(32),
                                           self._clock() + self.session_s)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._set_cookie(SESSION_COOKIE, cookie)

    def _set_cookie(self, name: str, value: str, max_age: int | None = None) -> None:
        options = {"path": "/", "httponly": True, "samesite": "strict",
                   "secure": bottle.request.urlparts.scheme == "https"}
        if max_age is not None:
            options["max_age"] = max_age
        bottle.response.set_cookie(name, value, **options)

    def _client(self) -> str:
        environ = bottle.request.environ
        return str(environ.get("appliance.client_address") or environ.get("REMOTE_ADDR", ""))

    def _locked_out(self, client: str) -> bool:
        now = self._clock()
        with self._lock:
            recent = [when for when in self._failures.get(client, []) if now - when < LOCKOUT_S]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            return len(recent) >= MAX_FAILURES

    def _record_failure(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(self._clock())
            if len(self._failures) > 10_000:
                self._failures.pop(next(iter(self._failures)))

    # -- login and logout --------------------------------------------------------------

    def _login_form(self, message: str = "") -> str:
        if not self.is_configured:
            bottle.response.status = 403
            return render_page("Admin password not set", LOCKED_BODY)
        token = secrets.token_urlsafe(32)
        self._set_cookie(LOGIN_COOKIE, token, max_age=3600)
        target = html.escape(_safe_next(bottle.request.params.get("next", "")))
        notice = f'<p class="bad">{html.escape(message)}</p>' if message else ""
        body = (f"{notice}<form method=\"post\" action=\"/login\">"
                f"<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{token}\">"
                f"<input type=\"hidden\" name=\"next\" value=\"{target}\">"
                "<label>Admin password<br><input type=\"password\" name=\"password\" "
                "autocomplete=\"current-password\" autofocus required></label><br>"
                "<button type=\"submit\">Log in</button></form>")
        return render_page("Log in", body)

    def _login_page(self) -> str:
        return self._login_form()

    def _login_submit(self) -> str:
        if not self.is_configured:
            return self._login_form()
        expected = bottle.request.get_cookie(LOGIN_COOKIE) or ""
        sent = bottle.request.forms.get(CSRF_FIELD) or ""
        if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
            bottle.response.status = 403
            return self._login_form("The login form has expired. Try again.")
        client = self._client()
        if self._locked_out(client):
            bottle.response.status = 429
            logger.warning("admin login refused", extra={"reason": "too many failures"})
            return self._login_form("Too many failed logins from this address. Wait "
                                    f"{LOCKOUT_S // 60} minutes and try again.")
        password = bottle.request.forms.getunicode("password") or ""
        if not verify_password(password, self.password_hash):
            self._record_failure(client)
            logger.warning("admin login failed", extra={"client": client})
            bottle.response.status = 401
            return self._login_form("Wrong password.")
        logger.info("admin logged in", extra={"client": client})
        self._start_session()
        bottle.response.delete_cookie(LOGIN_COOKIE, path="/")
        bottle.redirect(_safe_next(bottle.request.forms.get("next", "")), 303)

    def _logout(self) -> None:
        self.check_csrf()
        cookie = bottle.request.get_cookie(SESSION_COOKIE) or ""
        with self._lock:
            self._sessions.pop(hashlib.sha256(cookie.encode()).hexdigest(), None)
        logger.info("admin logged out", extra={"client": self._client()})
        bottle.response.delete_cookie(SESSION_COOKIE, path="/")
        bottle.redirect("/login", 303)


def _safe_next(target: str) -> str:
    """Keep a redirect target on this site; anything else goes to /setup."""
    parts = urlsplit(target)
    # Control characters cannot go into a Location header (Bottle raises on them).
    has_control = any(ord(character) < 0x20 or ord(character) == 0x7F for character in target)
    if target.startswith("/") and not target.startswith("//") and not parts.netloc \
            and "\\" not in target and not has_control:
        return target
    return "/setup"
