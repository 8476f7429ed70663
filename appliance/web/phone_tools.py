"""Admin tools for phones: a preview of any directory page as a chosen model gets it,
and the phone-side config lines that point a phone at the directory.

The preview sends an in-process request through the phone routes with the headers
that model sends, and shows the status, the charset, the XML as the phone receives
it, a plain rendering of its screen, and any text over its Cisco limit. It runs
the request on a separate thread, because Bottle keeps the current request in
thread-local storage and the admin page's own request must stay intact.
"""

from __future__ import annotations

import html
import io
import logging
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

import bottle

from appliance.cisco.text import (
    ENTRY_NAME_MAX,
    INPUT_DISPLAY_NAME_MAX,
    MENU_ITEM_NAME_MAX,
    PROMPT_MAX,
    SOFTKEY_NAME_MAX,
    TELEPHONE_MAX,
    TEXT_MAX,
    TITLE_MAX,
    URL_MAX,
)
from appliance.web.admin import admin_page, table

if TYPE_CHECKING:
    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)

PREVIEW_TIMEOUT_S = 10.0
INPUT_FIELD_PREFIX = "field."
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAC_SEPARATORS = re.compile(r"[\s:.-]")


@dataclass(frozen=True)
class PhoneModel:
    """A phone model as the preview imitates it: its label and request headers."""

    label: str
    headers: dict[str, str]


# NOTE: the 7940 and 7970 headers follow Cisco's development notes; the headers
# of 78xx/88xx and 3PCC firmware are assumptions (model name, UTF-8).
PHONE_MODELS: dict[str, PhoneModel] = {
    "7940": PhoneModel("7940 / 7960 (SCCP, Latin-1 locale)", {
        "X-CiscoIPPhoneModelName": "CP-7940G", "Accept-Charset": "iso-8859-1, utf-8;q=0.8"}),
    "7970": PhoneModel("7970 / 7971 (Unicode display)", {
        "X-CiscoIPPhoneModelName": "CP-7970G", "Accept-Charset": "utf-8",
        "X-CiscoIPPhoneDisplay": "298, 168, 12, C"}),
    "7841": PhoneModel("7841 (enterprise firmware)", {
        "X-CiscoIPPhoneModelName": "CP-7841", "Accept-Charset": "utf-8"}),
    "8845": PhoneModel("8845 (enterprise firmware)", {
        "X-CiscoIPPhoneModelName": "CP-8845", "Accept-Charset": "utf-8"}),
    "8845-3pcc": PhoneModel("8845 (3PCC / MPP firmware)", {
        "User-Agent": "Cisco-CP-8845-3PCC/11.3"}),
    "browser": PhoneModel("web browser (no phone headers)", {}),
}
DEFAULT_MODEL = "7940"

# Cisco limits of each text the preview checks, by element path.
LIMITS = {"Title": TITLE_MAX, "Prompt": PROMPT_MAX, "MenuItem/Name": MENU_ITEM_NAME_MAX,
          "DirectoryEntry/Name": ENTRY_NAME_MAX, "DirectoryEntry/Telephone": TELEPHONE_MAX,
          "SoftKeyItem/Name": SOFTKEY_NAME_MAX, "InputItem/DisplayName": INPUT_DISPLAY_NAME_MAX,
          "Text": TEXT_MAX, "MenuItem/URL": URL_MAX, "SoftKeyItem/URL": URL_MAX, "URL": URL_MAX}


# -- the preview ------------------------------------------------------------------------


@dataclass
class PhoneResponse:
    """Status line, headers and body that the phone routes returned to the preview."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")


def parse_target(text: str, base_url: str) -> tuple[str, str]:
    """Return (path, query) of a directory page given as a path or a full phone URL.

    Raises ValueError unless it is a phone path on this appliance (``/directory``
    and below, or ``/lookup``).
    """
    text = (text or "").strip() or "/directory"
    if base_url and text.startswith(base_url):
        text = text[len(base_url):] or "/directory"
    parts = urlsplit(text)
    path = parts.path
    is_phone_path = path in ("/directory", "/lookup") or path.startswith("/directory/")
    if parts.scheme or parts.netloc or not is_phone_path:
        raise ValueError(f"Cannot preview {text[:200]!r}: give a directory page, such as "
                         "/directory/browse?group=A, or a URL from a preview.")
    return path, parts.query


def fetch_as_phone(app: Callable, path: str, query: str, model: PhoneModel,
                   base_url: str, client: str) -> PhoneResponse:
    """Send one GET through ``app`` with the model's headers, on a separate thread."""
    host = urlsplit(base_url).hostname or "localhost"
    port = str(urlsplit(base_url).port or 80)
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": host, "SERVER_PORT": port, "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": client, "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "HTTP_HOST": f"{host}:{port}",
    }
    for name, value in model.headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    outcome: dict[str, object] = {}

    def run() -> None:
        def start_response(status, headers, exc_info=None):
            outcome["status"], outcome["headers"] = status, headers

        try:
            outcome["body"] = b"".join(app(environ, start_response))
        except Exception as error:  # the preview reports a crashed page, it never raises
            logger.exception("phone preview failed", extra={"path": path})
            outcome["error"] = error

    worker = threading.Thread(target=run, name="phone-preview", daemon=True)
    worker.start()
    worker.join(PREVIEW_TIMEOUT_S)
    if worker.is_alive() or "error" in outcome or "status" not in outcome:
        return PhoneResponse("500 Internal Server Error", [], b"")
    return PhoneResponse(outcome["status"], outcome["headers"], outcome["body"])


def over_limit(root: ElementTree.Element) -> list[tuple[str, int, int]]:
    """Return (element path, length, limit) for every text longer than its Cisco limit."""
    found = []
    for parent in root.iter():
        for child in parent:
            path = child.tag if parent is root else f"{parent.tag}/{child.tag}"
            limit = LIMITS.get(path)
            length = len(child.text or "")
            if limit and length > limit:
                found.append((path, length, limit))
    return found


class PreviewRenderer:
    """Turn a phone response into HTML: headers, screen, limits and the raw XML."""

    def __init__(self, model_key: str, base_url: str) -> None:
        self.model_key = model_key
        self.base_url = base_url

    def preview_link(self, url: str) -> str:
        """Return an admin link that previews ``url``, or the URL as text when it is
        not a directory page (such as ``SoftKey:Exit`` or ``Dial:``)."""
        try:
            parse_target(url, self.base_url)
        except ValueError:
            return f"<code>{html.escape(url)}</code>"
        query = urlencode({"model": self.model_key, "path": url})
        return f'<a href="/admin/preview?{html.escape(query)}">{html.escape(url)}</a>'

    def render(self, response: PhoneResponse) -> str:
        facts = [["Status", html.escape(response.status)],
                 ["Content-Type", html.escape(response.header("Content-Type"))],
                 ["Size", f"{len(response.body)} bytes"]]
        parts = [table([], facts)]
        try:
            root = ElementTree.fromstring(response.body)
        except ElementTree.ParseError as error:
            parts.append(f'<p class="bad">The body is not XML: {html.escape(str(error))}</p>')
            parts.append(self._raw(response))
            return "".join(parts)
        parts.append(f"<h2>Screen ({html.escape(root.tag)})</h2>" + self._screen(root))
        problems = over_limit(root)
        if problems:
            rows = [[html.escape(path), str(length), str(limit)]
                    for path, length, limit in problems]
            parts.append('<p class="bad">Over the Cisco limits:</p>' +
                         table(["Element", "Length", "Limit"], rows))
        else:
            parts.append('<p class="ok">Every text is within its Cisco limit.</p>')
        parts.append(self._raw(response))
        return "".join(parts)

    def _screen(self, root: ElementTree.Element) -> str:
        parts = []
        for tag in ("Title", "Prompt"):
            if root.findtext(tag):
                parts.append(f"<p><b>{tag}:</b> {html.escape(root.findtext(tag))}</p>")
        items = [[html.escape(item.findtext("Name") or ""),
                  self.preview_link(item.findtext("URL") or "")]
                 for item in root.findall("MenuItem")]
        if items:
            parts.append(table(["Menu item", "Link"], items))
        entries = [[html.escape(entry.findtext("Name") or ""),
                    html.escape(entry.findtext("Telephone") or "")]
                   for entry in root.findall("DirectoryEntry")]
        if entries:
            parts.append(table(["Name", "Telephone"], entries))
        if root.find("Text") is not None:
            parts.append(f"<pre>{html.escape(root.findtext('Text') or '')}</pre>")
        if root.tag == "CiscoIPPhoneInput":
            parts.append(self._input_form(root))
        keys = [[html.escape(key.findtext("Position") or ""),
                 html.escape(key.findtext("Name") or ""),
                 self.preview_link(key.findtext("URL") or "")]
                for key in root.findall("SoftKeyItem")]
        if keys:
            parts.append(table(["Position", "Softkey", "Action"], keys))
        return "".join(parts)

    def _input_form(self, root: ElementTree.Element) -> str:
        fields = []
        for item in root.findall("InputItem"):
            param = item.findtext("QueryStringParam") or ""
            fields.append(
                f"<label>{html.escape(item.findtext('DisplayName') or param)} "
                f"(flags {html.escape(item.findtext('InputFlags') or '')})<br>"
                f'<input type="text" name="{html.escape(INPUT_FIELD_PREFIX + param)}" '
                f'value="{html.escape(item.findtext("DefaultValue") or "")}"></label>')
        return ('<form method="get" action="/admin/preview">'
                f'<input type="hidden" name="model" value="{html.escape(self.model_key)}">'
                f'<input type="hidden" name="input_url" '
                f'value="{html.escape(root.findtext("URL") or "")}">'
                f'{"".join(fields)}<button type="submit">Submit as the phone</button></form>')

    def _raw(self, response: PhoneResponse) -> str:
        content_type = response.header("Content-Type")
        charset = content_type.partition("charset=")[2].strip() or "utf-8"
        try:
            text = response.body.decode(charset, errors="replace")
        except LookupError:
            text = response.body.decode("utf-8", errors="replace")
        return f"<h2>XML as sent ({html.escape(charset)})</h2><pre>{html.escape(text)}</pre>"


def input_target(query: bottle.FormsDict) -> str:
    """Build the URL a phone requests when it submits an Input form in the preview."""
    base = query.getunicode("input_url") or ""
    values = [(name[len(INPUT_FIELD_PREFIX):], query.getunicode(name) or "")
              for name in query.keys() if name.startswith(INPUT_FIELD_PREFIX)]
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{urlencode(values)}" if values else base


# -- phone-side config ----------------------------------------------------------------------


def parse_mac(text: str) -> str:
    """Return a MAC address as 12 uppercase hex digits; raise ValueError otherwise.

    Accepts separators (colons, dashes, dots, spaces) and a leading ``SEP``.
    """
    cleaned = _MAC_SEPARATORS.sub("", text or "").upper()
    if cleaned.startswith("SEP"):
        cleaned = cleaned[3:]
    if not re.fullmatch(r"[0-9A-F]{12}", cleaned):
        raise ValueError(f"Invalid MAC address {text[:40]!r}: expected 12 hex digits, such "
                         "as 00:11:22:33:44:55 or SEP001122334455.")
    return cleaned


def directory_url(base_url: str, token: str = "") -> str:
    """Return the URL phones use as their directory, with the token when there is one."""
    if token and not _TOKEN_TEXT.fullmatch(token):
        raise ValueError("Invalid token: a phone token has letters, digits, - and _ only, as "
                         "'python -m appliance token create' prints it.")
    return f"{base_url}/directory" + (f"?token={token}" if token else "")


def render_config_lines(base_url: str, service_name: str, mac: str = "",
                        token: str = "") -> list[tuple[str, str, str]]:
    """Return (heading, file, lines) for each phone family's directory setting."""
    url = directory_url(base_url, token)
    cnf_file = f"SEP{mac}.cnf.xml" if mac else "SEP<MAC>.cnf.xml"
    sip_file = f"SIP{mac}.cnf" if mac else "SIP<MAC>.cnf or SIPDefault.cnf"
    return [
        ("Enterprise firmware (7900, 7800, 8800 with CUCM-style config)", cnf_file,
         f"<device>\n  ...\n  <directoryURL>{xml_escape(url)}</directoryURL>\n</device>"),
        ("3PCC / MPP firmware (68xx, 78xx, 88xx) and SPA5xx", "the phone's cfg.xml profile",
         f"<XML_Directory_Service_Name>{xml_escape(service_name)}"
         "</XML_Directory_Service_Name>\n"
         f"<XML_Directory_Service_URL>{xml_escape(url)}</XML_Directory_Service_URL>"),
        ("7940 / 7960 with SIP firmware", sip_file, f'directory_url: "{url}"'),
    ]


# -- routes -------------------------------------------------------------------------------


class PhoneTools:
    """The /admin/preview and /admin/phone-config pages."""

    def __init__(self, appliance: "Appliance") -> None:
        self.appliance = appliance
        self.auth = appliance.admin_auth

    def register(self, app: bottle.Bottle) -> None:
        app.route("/admin/preview", "GET", self.auth.require(self.preview))
        app.route("/admin/phone-config", "GET", self.auth.require(self.phone_config))

    def preview(self) -> str:
        query = bottle.request.query
        model_key = query.getunicode("model") or DEFAULT_MODEL
        if model_key not in PHONE_MODELS:
            model_key = DEFAULT_MODEL
        target = input_target(query) if query.get("input_url") else \
            (query.getunicode("path") or "/directory")
        base_url = self.appliance.base_url
        parts = [self._preview_form(model_key, target)]
        try:
            path, query_string = parse_target(target, base_url)
        except ValueError as error:
            bottle.response.status = 400
            parts.append(f'<p class="bad">{html.escape(str(error))}</p>')
            return admin_page(self.auth, "Phone preview", "".join(parts))
        client = str(bottle.request.environ.get("appliance.client_address") or "127.0.0.1")
        response = fetch_as_phone(self.appliance.bottle_app, path, query_string,
                                  PHONE_MODELS[model_key], base_url, client)
        parts.append(PreviewRenderer(model_key, base_url).render(response))
        if self.appliance.config.phones.require_token:
            parts.append("<p>Tokens are required on this appliance; links in a phone's "
                         "pages also carry its token, which the preview leaves out.</p>")
        return admin_page(self.auth, "Phone preview", "".join(parts))

    def _preview_form(self, model_key: str, target: str) -> str:
        options = "".join(
            f'<option value="{key}"{" selected" if key == model_key else ""}>'
            f"{html.escape(model.label)}</option>" for key, model in PHONE_MODELS.items())
        return ('<form method="get" action="/admin/preview"><label>Phone model<br>'
                f'<select name="model">{options}</select></label><br><label>Directory page '
                f'(path or URL)<br><input type="text" name="path" '
                f'value="{html.escape(target)}"></label>'
                '<button type="submit">Preview</button></form>')

    def phone_config(self) -> str:
        query = bottle.request.query
        mac_text = (query.getunicode("mac") or "").strip()
        token = (query.getunicode("token") or "").strip()
        service_name = (query.getunicode("name") or "").strip()[:64] or \
            self.appliance.config.directory.title
        parts = [self._config_form(mac_text, token, service_name)]
        try:
            mac = parse_mac(mac_text) if mac_text else ""
            blocks = render_config_lines(self.appliance.base_url, service_name, mac, token)
        except ValueError as error:
            bottle.response.status = 400
            parts.append(f'<p class="bad">{html.escape(str(error))}</p>')
            return admin_page(self.auth, "Phone config", "".join(parts))
        if not self.appliance.config.server.public_base_url:
            parts.append('<p class="bad">[server] public_base_url is not set, so these URLs '
                         f"use {html.escape(self.appliance.base_url)}. Set it to the address "
                         "phones reach the appliance at.</p>")
        for heading, file_name, lines in blocks:
            parts.append(f"<h2>{html.escape(heading)}</h2><p>In {html.escape(file_name)}:</p>"
                         f"<pre>{html.escape(lines)}</pre>")
        return admin_page(self.auth, "Phone config", "".join(parts))

    def _config_form(self, mac: str, token: str, service_name: str) -> str:
        return ('<form method="get" action="/admin/phone-config">'
                '<label>MAC address (optional)<br><input type="text" name="mac" '
                f'value="{html.escape(mac)}"></label><br>'
                '<label>Phone token (optional)<br><input type="text" name="token" '
                f'value="{html.escape(token)}" autocomplete="off"></label><br>'
                '<label>Service name on the phone<br><input type="text" name="name" '
                f'value="{html.escape(service_name)}"></label>'
                '<button type="submit">Make config</button></form>')


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    PhoneTools(appliance).register(app)
