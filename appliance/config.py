"""Settings table, ini loading and validation.

``SETTINGS`` is the single source for every key the appliance reads: validation,
``config.example.ini`` and ``docs/configuration.md`` are generated from it, and a
test fails when the committed files drift from it.
"""

from __future__ import annotations

import configparser
import ipaddress
import math
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from appliance.errors import ConfigError

# ---------------------------------------------------------------------------
# Converters. Each one parses ini text and raises ValueError on bad input; its
# ``expected`` text completes the sentence "expected ..." in error messages.


@dataclass(frozen=True)
class Converter:
    parse: Callable[[str], Any]
    expected: str

    def __call__(self, text: str) -> Any:
        return self.parse(text)


def integer(minimum: int | None = None, maximum: int | None = None, example: int = 10) -> Converter:
    def parse(text: str) -> int:
        value = int(text.strip())
        if minimum is not None and value < minimum:
            raise ValueError(text)
        if maximum is not None and value > maximum:
            raise ValueError(text)
        return value

    if minimum is not None and maximum is not None:
        expected = f"a whole number from {minimum} to {maximum}, such as {example}"
    elif minimum is not None:
        expected = f"a whole number of at least {minimum}, such as {example}"
    else:
        expected = f"a whole number, such as {example}"
    return Converter(parse, expected)


def number(minimum: float = 0.0, example: float = 1.5) -> Converter:
    def parse(text: str) -> float:
        value = float(text.strip())
        if not math.isfinite(value) or value < minimum:  # nan, inf or below the minimum
            raise ValueError(text)
        return value

    return Converter(parse, f"a number of at least {minimum:g}, such as {example:g}")


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def _parse_boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


boolean = Converter(_parse_boolean, "yes or no (also true/false, on/off, 1/0)")


def text(pattern: str | None = None, expected: str = "any text") -> Converter:
    compiled = re.compile(pattern) if pattern else None

    def parse(value: str) -> str:
        value = value.strip()
        if compiled is not None and value and not compiled.fullmatch(value):
            raise ValueError(value)
        return value

    return Converter(parse, expected)


def choice(*options: str) -> Converter:
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in options:
            raise ValueError(value)
        return lowered

    return Converter(parse, "one of " + ", ".join(options))


def _parse_path(value: str) -> Path | None:
    value = value.strip()
    if not value:
        return None
    return Path(os.path.expanduser(value))


path = Converter(_parse_path, "a file or folder path, such as ./data")


class Rejected(ValueError):
    """A value a converter rejects for a reason of its own, given in ``reason``.

    The reason replaces the "expected ..." part of the error message.
    """

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(value)
        self.reason = reason


def _parse_folder(value: str) -> Path | None:
    folder = _parse_path(value)
    if folder is None:
        return None
    # The folder may not exist yet, but a file in its place (or in place of a
    # parent) would fail every later step with a bare "Not a directory".
    for candidate in (folder, *folder.parents):
        try:
            if not candidate.exists():
                continue
            if not candidate.is_dir():
                raise Rejected(value, f"{candidate} is a file, not a folder. Set it to "
                                      "the path of a folder, which is created if missing")
        except OSError:
            pass  # unreadable: the step that uses the folder reports it
        break
    return folder


folder = Converter(_parse_folder, "a folder path, such as ./data; created if missing")


def _parse_http_url(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    return value.rstrip("/")


http_url = Converter(_parse_http_url, "an http:// or https:// address, such as http://192.168.1.10:8080")

# Cisco phones take links of at most 256 characters. The longest link the phone
# routes build is a keypad search in a label's directory, on a page with six
# digits, carrying a phone token:
#   /directory/labels/<label id>/search/keypad?token=<token>&q=<text>&page=<page>
# with label ids of 8 hex digits (12 allowed for collisions), 24-character tokens
# and 32 characters kept for the search text; longer search text is cut to fit.
URL_MAX = 256
MAX_LINK_PATH_CHARS = (len("/directory/labels/") + 12 + len("/search/keypad")
                     + len("?token=") + 24 + len("&q=") + 32 + len("&page=") + 6)
PUBLIC_BASE_URL_MAX = URL_MAX - MAX_LINK_PATH_CHARS


def _parse_public_base_url(value: str) -> str:
    url = _parse_http_url(value)
    if len(url) > PUBLIC_BASE_URL_MAX:
        raise Rejected(
            value, f"it has {len(url)} characters, but phones take links of at most "
                   f"{URL_MAX} and the longest link the directory builds adds "
                   f"{MAX_LINK_PATH_CHARS} to this address. Use an address of at most "
                   f"{PUBLIC_BASE_URL_MAX} characters, such as http://192.168.1.10:8080")
    return url


public_base_url = Converter(
    _parse_public_base_url,
    f"an http:// or https:// address of at most {PUBLIC_BASE_URL_MAX} characters, such "
    "as http://192.168.1.10:8080")


_LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def _parse_endpoint_url(value: str) -> str:
    # Tokens travel to these addresses, so plain http is only for a test server
    # on this box (the fake Google under tests/).
    value = value.strip()
    parts = urlsplit(value)
    if not parts.hostname:
        raise ValueError(value)
    parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return value
    raise ValueError(value)


endpoint_url = Converter(
    _parse_endpoint_url,
    "an https:// address, or http:// on 127.0.0.1 for a test server, such as "
    "https://people.googleapis.com/")


def _parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = [item.strip() for item in re.split(r"[,\s]+", value) if item.strip()]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


networks = Converter(
    _parse_networks,
    "a comma-separated list of IP networks, such as 127.0.0.0/8, 192.168.0.0/16",
)


def _parse_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


string_list = Converter(_parse_list, "a comma-separated list, such as Staff, Suppliers")

_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


def _parse_email_list(value: str) -> tuple[str, ...]:
    addresses = _parse_list(value)
    for address in addresses:
        if not _EMAIL.fullmatch(address):
            raise Rejected(value, f'"{address}" is not an email address. Expected '
                                  f"{email_list.expected}")
    return addresses


email_list = Converter(
    _parse_email_list, "a comma-separated list of email addresses, such as "
                       "it@example.com, ops@example.com")


def _parse_region(value: str) -> str:
    import phonenumbers  # imported here: loading its metadata takes a moment

    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(value)
    return region


region = Converter(
    _parse_region, "a two-letter ISO 3166 country code that libphonenumber knows, such "
                   "as US, DE or GB")


def _parse_ip_address(value: str) -> str:
    value = value.strip()
    if value:
        ipaddress.ip_address(value)  # raises ValueError for anything but one address
    return value


ip_address = Converter(_parse_ip_address, "one IP address, such as 192.168.1.5")

# ---------------------------------------------------------------------------
# The settings table.


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: str
    convert: Converter
    unit: str
    help: str
    secret: bool = False


PRIVATE_AND_LOOPBACK = "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7"

SETTINGS: tuple[Setting, ...] = (
    # [server]
    Setting("server", "host", "0.0.0.0", text(), "",
            "Address to listen on; 0.0.0.0 listens on every IPv4 address of the box."),
    Setting("server", "port", "8080", integer(0, 65535, 8080), "",
            "TCP port to listen on; 0 picks a free port (for tests)."),
    Setting("server", "public_base_url", "", public_base_url, "",
            "Address phones use to reach the appliance, with its port, such as "
            "http://192.168.1.10:8080. Every link in the XML is built from it, because "
            "some phones drop the port from the Host header. Empty: derived from host and port."),
    Setting("server", "threads", "8", integer(1, 64, 8), "",
            "Worker threads that serve requests."),
    # [storage]
    Setting("storage", "data_dir", "./data", folder, "",
            "Folder for the database, credentials and sync state; created if missing."),
    # [directory]
    Setting("directory", "title", "Company Directory", text(), "",
            "Title of the directory's top menu on the phone (cut to 32 characters)."),
    Setting("directory", "sort", "family", choice("family", "given", "display"), "",
            "Order of browse and search results: by family name, given name or display name."),
    Setting("directory", "name_format", "given_family", choice("given_family", "family_given"), "",
            "How a person's name is shown: 'Ada Lovelace' (given_family) or "
            "'Lovelace, Ada' (family_given)."),
    Setting("directory", "page_size", "32", integer(1, 32, 32), "entries",
            "Directory entries per page; Cisco phones accept at most 32."),
    Setting("directory", "sample_contacts", "yes", boolean, "",
            "Load the bundled fictional contacts when the store is empty, so the directory "
            "works before any import or sync. They are removed by the first import or sync."),
    Setting("directory", "label_menus", "no", boolean, "",
            "Offer each label (a Google label, or a group from an imported file) in the top "
            "menu as a directory of its own, with browse A-Z and the three searches. When "
            "more than 96 labels have contacts, a Groups item leads to pages of them."),
    Setting("directory", "menu_labels", "", string_list, "",
            "Labels to offer when label_menus is yes, compared without regard to case. "
            "Empty: every label that has a contact with a number."),
    # [dialplan]
    Setting("dialplan", "home_country", "US", region, "",
            "Country the PBX is in; numbers written without a country code are read as numbers of "
            "this country, and numbers of this country are dialled in national form."),
    Setting("dialplan", "outside_line_prefix", "", text(r"[0-9*#]*", "digits, * or #, such as 9"), "",
            "Digits the PBX needs before an outside number, such as 9. Not added to internal extensions."),
    Setting("dialplan", "international_prefix", "", text(r"[0-9*#,]*", "digits, such as 00 or 011"), "",
            "Digits that start an international call. Empty: the home country's usual prefix "
            "(011 in the US, 00 in most of Europe)."),
    Setting("dialplan", "national_prefix", "auto", text(r"auto|none|[0-9]*", "auto, none or digits, such as 0"), "",
            "Trunk prefix for national calls: auto uses the home country's usual prefix "
            "(0 in Germany and the UK, 1 in North America), none dials without one."),
    Setting("dialplan", "extension", "pause", choice("pause", "drop"), "",
            "What to do with an extension such as 'ext. 42': pause dials the number, waits "
            "extension_pause_seconds and dials the extension; drop dials the main number only."),
    Setting("dialplan", "extension_pause_seconds", "2", integer(1, 10, 2), "seconds",
            "Wait between a number and its extension; the phone pauses one second per comma "
            "it dials."),
    Setting("dialplan", "internal_digits", "0", integer(0, 8, 4), "digits",
            "Numbers of at most this many digits are internal extensions and are dialled as "
            "they are, with no prefixes. 0 turns this off."),
    # [google]
    Setting("google", "client_secrets", "", path, "",
            "OAuth client file (JSON) of a Desktop app client, downloaded from Google Cloud "
            "Console. Needed for authorisation through /setup or 'python -m appliance auth'."),
    Setting("google", "credentials", "", path, "",
            "File where the appliance keeps the Google authorisation (refresh token), with "
            "mode 0600. Empty: google-credentials.json in the data folder."),
    Setting("google", "service_account_key", "", path, "",
            "Google Workspace only: service account key file (JSON) with domain-wide "
            "delegation. When set, it is used instead of the OAuth authorisation."),
    Setting("google", "subject", "", text(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address, such as it@example.com"), "",
            "Google Workspace only: the user whose contacts the service account reads."),
    Setting("google", "sync_interval_minutes", "15", integer(1, 1440, 15), "minutes",
            "Time between background syncs. Each wait varies by up to a tenth, so several "
            "appliances on one account do not call Google in step."),
    Setting("google", "other_contacts", "no", boolean, "",
            "Also sync 'Other contacts' (people Gmail saved from mail). Needs the "
            "contacts.other.readonly scope, so authorise again after turning it on."),
    Setting("google", "workspace_directory", "no", boolean, "",
            "Also sync the Google Workspace directory of the account's domain. Needs the "
            "directory.readonly scope, so authorise again after turning it on."),
    Setting("google", "labels_include", "", string_list, "",
            "Google labels (contact groups) to sync; contacts outside every one of them are "
            "left out. Empty: all contacts."),
    Setting("google", "labels_exclude", "", string_list, "",
            "Google labels whose contacts are left out, even when they are in an included label."),
    Setting("google", "request_timeout_seconds", "30", number(1.0, 30), "seconds",
            "Time limit for one call to Google, connect and read together."),
    Setting("google", "max_attempts", "5", integer(1, 10, 5), "",
            "Tries per call to Google when it answers 429 or 5xx or does not answer."),
    Setting("google", "retry_base_delay_seconds", "1", number(0.0, 1), "seconds",
            "Wait before the second try; it doubles with each further try, with random "
            "jitter. A Retry-After header from Google takes precedence."),
    Setting("google", "retry_max_delay_seconds", "60", number(0.0, 60), "seconds",
            "Longest wait between two tries, Retry-After included."),
    Setting("google", "api_root", "https://people.googleapis.com/", endpoint_url, "",
            "Root address of the People API. Change it only to reach a test server."),
    Setting("google", "token_uri", "https://oauth2.googleapis.com/token", endpoint_url, "",
            "Google's OAuth token endpoint. Change it only to reach a test server."),
    Setting("google", "auth_uri", "https://accounts.google.com/o/oauth2/auth", endpoint_url, "",
            "Google's OAuth consent page. Change it only to reach a test server."),
    # [admin]
    Setting("admin", "password_hash", "", text(r"(scrypt|pbkdf2_sha256)\$\S+", "a hash made by 'python -m appliance hash-password'"), "",
            "Hash of the password for /setup and the other admin pages, made by "
            "'python -m appliance hash-password'. Empty: the admin pages are locked.",
            secret=True),
    Setting("admin", "session_minutes", "60", integer(5, 1440, 60), "minutes",
            "How long an admin stays logged in without using the admin pages."),
    # [metrics]
    Setting("metrics", "allow", PRIVATE_AND_LOOPBACK, networks, "",
            "Networks whose hosts may read /metrics; requests from any other address get 403."),
    Setting("metrics", "bearer_token", "", text(r"[\x21-\x7e]{16,}", "at least 16 characters without spaces, such as the output of 'openssl rand -hex 32'"), "",
            "When set, /metrics also requires the header 'Authorization: Bearer <token>', "
            "so a Prometheus in an allowed network must present it. Empty: no token needed.",
            secret=True),
    Setting("metrics", "refresh_seconds", "30", integer(1, 3600, 30), "seconds",
            "Time between refreshes of the gauges that read the disk or the database "
            "(contacts, database size, disk free), so a scrape itself stays cheap."),
    # [health]
    Setting("health", "cache_seconds", "5", integer(0, 300, 5), "seconds",
            "How long /health reuses one set of check results, so frequent polling cannot "
            "load the box. 0 runs the checks on every request."),
    Setting("health", "freshness_warn_minutes", "60", integer(1, 525600, 60), "minutes",
            "Age of the last successful Google sync at which /health turns to warn."),
    Setting("health", "freshness_fail_minutes", "1440", integer(1, 525600, 1440), "minutes",
            "Age of the last successful Google sync at which /health turns to fail; "
            "must be more than freshness_warn_minutes."),
    Setting("health", "disk_warn_free_mib", "500", integer(0, 10_000_000, 500), "MiB",
            "Free space on the data folder's disk below which /health turns to warn."),
    Setting("health", "disk_fail_free_mib", "100", integer(0, 10_000_000, 100), "MiB",
            "Free space on the data folder's disk below which /health turns to fail; "
            "must be less than disk_warn_free_mib."),
    # [profiling]
    Setting("profiling", "enabled", "no", boolean, "",
            "Turn on the slow-request log and the admin-only /debug/profile page."),
    Setting("profiling", "slow_request_ms", "500", integer(1, 600_000, 500), "ms",
            "Requests that take longer are logged at WARNING with their query and render time."),
    Setting("profiling", "max_profile_seconds", "30", integer(1, 300, 30), "seconds",
            "Longest sampling run /debug/profile accepts in its seconds parameter."),
    Setting("profiling", "sample_interval_ms", "10", integer(5, 1000, 10), "ms",
            "Time between two samples of every thread's stack during /debug/profile."),
    # [server] request limits, [phones] and [admin] access
    Setting("server", "max_request_body_bytes", "1048576", integer(1024, 1 << 30, 1048576), "bytes",
            "Largest request body accepted; a larger one gets 413. Phones send no body and "
            "the admin forms are small."),
    Setting("server", "max_request_header_bytes", "16384", integer(2048, 1 << 20, 16384), "bytes",
            "Largest request line and headers accepted together; larger requests get 431 "
            "from waitress, without a request ID. A phone's largest request (a "
            "256-character link, its Cisco headers and four 255-byte cookies) takes under "
            "2048 bytes."),
    Setting("server", "connection_limit", "500", integer(10, 10_000, 500), "connections",
            "Open connections served at once; further clients wait until one closes. Keep "
            "it well above the number of phones, because stalled clients also hold one."),
    Setting("server", "channel_timeout_seconds", "30", integer(1, 3600, 30), "seconds",
            "A connection that sends nothing for this long is closed, so idle or stalled "
            "clients give their connection back."),
    Setting("server", "trusted_proxy", "", ip_address, "",
            "Address of a reverse proxy in front of the appliance (for HTTPS). Only requests "
            "from it may set the client address with X-Forwarded-For; from every other "
            "client the X-Forwarded headers are removed. Empty: no proxy is trusted."),
    Setting("phones", "allow", PRIVATE_AND_LOOPBACK, networks, "",
            "Networks whose hosts may read the directory and /lookup; requests from any "
            "other address get 403."),
    Setting("phones", "require_token", "no", boolean, "",
            "Require a per-phone token, made by 'python -m appliance token create', in the "
            "directory URL (?token=...). Requests without a live token get 403."),
    Setting("phones", "rate_limit_per_second", "10", number(0.0, 10), "requests per second",
            "Average requests per second one client address may make to the directory; "
            "more get 429. 0 turns the limit off."),
    Setting("phones", "rate_limit_burst", "60", integer(1, 1_000_000, 60), "requests",
            "Requests one client address may make in a quick burst before the average "
            "limit applies; 60 covers a phone paging through a long list."),
    Setting("admin", "allow", PRIVATE_AND_LOOPBACK, networks, "",
            "Networks whose hosts may open the admin pages (/setup, /admin, /login); "
            "requests from any other address get 403."),
    Setting("health", "allow", PRIVATE_AND_LOOPBACK, networks, "",
            "Networks whose hosts may read /health, /livez and /readyz; requests from any "
            "other address get 403."),
    # [directory], text for phones that do not take UTF-8
    Setting("directory", "ascii_only", "no", boolean, "",
            "Phones that do not accept UTF-8 get ISO-8859-1 text, where letters such as é "
            "and ü stay and others are spelt in Latin letters (ł as l, Иван as Ivan). yes: "
            "spell every accented letter plainly too (ä as a, ß as ss), for phones whose "
            "locale shows no accented letters."),
    # [logging]
    Setting("logging", "level", "info", choice("debug", "info", "warning", "error"), "",
            "Lowest level written to the console, app.log and access.log. debug adds one "
            "line per /metrics scrape and per-item detail."),
    Setting("logging", "format", "json", choice("json", "text"), "",
            "Console lines as JSON objects (for journald and log collectors) or as text "
            "for reading in a terminal. The files are always JSON."),
    Setting("logging", "console", "yes", boolean, "",
            "Write log lines to standard output, where systemd's journal keeps them."),
    Setting("logging", "dir", "./logs", path, "",
            "Folder for app.log, errors.log and access.log; created if missing. Empty: "
            "no log files, console only."),
    Setting("logging", "when", "midnight",
            choice("s", "m", "h", "d", "midnight", "w0", "w1", "w2", "w3", "w4", "w5", "w6"), "",
            "When log files rotate: midnight (UTC), w0 to w6 (weekly, at the UTC midnight "
            "that starts Monday to Sunday), or every interval s, m, h or d (seconds, "
            "minutes, hours, days) counted from the start of the period."),
    Setting("logging", "interval", "1", integer(1, 1000, 1), "",
            "How many units of when make one period; must be 1 for midnight and w0 to w6."),
    Setting("logging", "backup_count", "14", integer(0, 100_000, 14), "files",
            "Rotated files kept per log file, gzip-compressed; older ones are deleted. 0 "
            "keeps all (max_total_mib still applies)."),
    Setting("logging", "max_file_mib", "50", integer(1, 1_000_000, 50), "MiB",
            "A log file this big rotates before its period ends, so a flood of requests "
            "cannot grow one file without bound."),
    Setting("logging", "max_total_mib", "500", integer(3, 10_000_000, 500), "MiB",
            "Size cap of the log folder: the oldest rotated files are deleted until the "
            "folder fits. At least three times max_file_mib."),
    # [notify]
    Setting("notify", "name", "", text(), "",
            "How notifications name this appliance, such as 'Phonebook Berlin office'. "
            "Empty: the host name."),
    Setting("notify", "webhook_url", "", http_url, "",
            "Address to POST notifications to as JSON with a 'text' field, as Slack and "
            "Microsoft Teams incoming webhooks accept. Empty: no webhook.", secret=True),
    Setting("notify", "smtp_host", "", text(), "",
            "Mail server that sends notification email. Empty: no email."),
    Setting("notify", "smtp_port", "587", integer(1, 65535, 587), "",
            "Mail server port: 587 for STARTTLS, 465 for TLS, 25 for none."),
    Setting("notify", "smtp_security", "starttls", choice("starttls", "tls", "none"), "",
            "How the mail connection is encrypted: starttls (upgrade after connecting), "
            "tls (encrypted from the start) or none (only on a trusted network)."),
    Setting("notify", "smtp_ca_file", "", path, "",
            "PEM file of the certificate authority that signed the mail server's "
            "certificate, for an internal CA. Empty: the system's trusted authorities."),
    Setting("notify", "smtp_user", "", text(), "",
            "User name to log in to the mail server. Empty: send without logging in."),
    Setting("notify", "smtp_password", "", text(), "",
            "Password for smtp_user.", secret=True),
    Setting("notify", "email_from", "", text(r"[^@\s]+@[^@\s]+", "an email address, such as phonebook@example.com"), "",
            "Sender address of notification email."),
    Setting("notify", "email_to", "", email_list, "",
            "Comma-separated addresses that receive notification email."),
    Setting("notify", "timeout_seconds", "10", integer(1, 300, 10), "seconds",
            "Longest wait for the webhook or the mail server before a send counts as "
            "failed."),
    Setting("notify", "repeat_minutes", "240", integer(1, 525_600, 240), "minutes",
            "A problem that lasts is notified again at most this often; a recovery is "
            "always notified."),
    Setting("notify", "sync_failures", "3", integer(0, 10_000, 3), "syncs",
            "Notify when this many Google syncs in a row have failed. 0 turns it off."),
    Setting("notify", "disk_free_mib", "200", integer(0, 10_000_000, 200), "MiB",
            "Notify when the data folder's disk has less free space than this. 0 turns "
            "it off."),
    Setting("notify", "request_errors", "20", integer(0, 1_000_000, 20), "responses",
            "Notify when this many requests end in a server error (5xx) within "
            "request_error_window_minutes. 0 turns it off."),
    Setting("notify", "request_error_window_minutes", "5", integer(1, 1440, 5), "minutes",
            "Time window over which request_errors are counted."),
)

# ---------------------------------------------------------------------------
# Loading.


class Section:
    """Read-only attribute view of one section's converted values."""

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self._name = name
        self._values = values

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"no setting [{self._name}] {key}") from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]


class Config:
    """Validated settings, reachable as ``config.server.port``."""

    def __init__(self, values: dict[tuple[str, str], Any], path: Path | None,
                 raw: dict[tuple[str, str], str]) -> None:
        self.path = path
        self._values = values
        self._raw = raw
        sections: dict[str, dict[str, Any]] = {}
        for (section, key), value in values.items():
            sections.setdefault(section, {})[key] = value
        self._sections = {name: Section(name, items) for name, items in sections.items()}

    def __getattr__(self, name: str) -> Section:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(f"no config section [{name}]") from None

    def get(self, section: str, key: str) -> Any:
        return self._values[(section, key)]

    def raw(self, section: str, key: str) -> str:
        """Return the ini text a setting was read from (or its default)."""
        return self._raw[(section, key)]

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "embedded defaults"

    def is_set(self, section: str, key: str) -> bool:
        """Tell whether the config file sets this key, rather than the default."""
        return (section, key) in self._explicit

    _explicit: frozenset[tuple[str, str]] = frozenset()


def setting_index() -> dict[tuple[str, str], Setting]:
    return {(s.section, s.key): s for s in SETTINGS}


def _where(section: str, key: str, path: Path | None) -> str:
    place = f"in [{section}]"
    if path is not None:
        place += f" of {path}"
    return f"{key} {place}"


def load_config(path: Path | str | None = None,
                overrides: dict[tuple[str, str], str] | None = None) -> Config:
    """Read and validate an ini file; ``None`` gives the embedded defaults.

    Raises ConfigError with one line that names the file, section, key, value and
    the expected form.
    """
    path = Path(path) if path is not None else None
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive and reported as written
    if path is not None:
        try:
            parser.read_string(_read_ini_text(path), source=str(path))
        except FileNotFoundError:
            raise ConfigError(
                f"Config file {path} not found: check the path given with --config, or run "
                "without --config to use the embedded defaults."
            ) from None
        except OSError as error:
            raise ConfigError(
                f"Config file {path} cannot be read: {error.strerror or error}.") from None
        except configparser.Error as error:
            raise ConfigError(
                f"Config file {path} is not a valid ini file: {_describe_ini_error(error)}"
            ) from None

    return _validate(parser, path, overrides or {})


_UTF8_BOM = b"\xef\xbb\xbf"


def _read_ini_text(path: Path) -> str:
    """Read a config file as UTF-8, with or without a byte order mark.

    Raises ConfigError naming the line and byte offset of the first byte that is
    not UTF-8; the byte itself is not shown, because it may be part of a secret.
    """
    data = path.read_bytes()
    body = data.removeprefix(_UTF8_BOM)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        offset = error.start + len(data) - len(body)
        line = data[:offset].count(b"\n") + 1
        raise ConfigError(
            f"Config file {path} is not UTF-8 text: the byte at offset {offset} (line "
            f"{line}) is not valid UTF-8. Save it as UTF-8 in your editor, or convert it "
            "with iconv -f latin1 -t utf-8, and try again.") from None


def _describe_ini_error(error: configparser.Error) -> str:
    """Say which line is wrong and how to fix it, without quoting the line.

    configparser's own messages quote the offending line, and a line such as
    ``smtp_password S3cr3t`` (the "=" left out) would put the password on the
    screen and in the log.
    """
    if isinstance(error, configparser.MissingSectionHeaderError):
        return (f"line {error.lineno} is outside any [section]. Start the file with a "
                "section header such as [server], and check that each header has both "
                "brackets.")
    if isinstance(error, configparser.DuplicateSectionError):
        return (f"section [{error.section}] appears a second time on line {error.lineno}. "
                "Merge the two sections into one.")
    if isinstance(error, configparser.DuplicateOptionError):
        return (f"key {error.option} in [{error.section}] appears a second time on line "
                f"{error.lineno}. Keep one of the two lines.")
    if isinstance(error, configparser.ParsingError):
        numbers = [str(lineno) for lineno, _ in error.errors]
        lines = f"line {numbers[0]} is" if len(numbers) == 1 else (
            f"lines {', '.join(numbers[:-1])} and {numbers[-1]} are")
        return (f"{lines} not a [section] header or a key = value line, usually because "
                "the \"=\" is missing. Write each setting as key = value, such as "
                "port = 8080.")
    return f"{type(error).__name__}. Check the file against config.example.ini."


def _validate(parser: configparser.ConfigParser, path: Path | None,
              overrides: dict[tuple[str, str], str]) -> Config:
    index = setting_index()
    known_sections = {s.section for s in SETTINGS}
    for section in parser.sections():
        if section not in known_sections:
            raise ConfigError(
                f"Unknown section [{section}] in {path}: expected one of "
                + ", ".join(f"[{name}]" for name in sorted(known_sections)) + "."
            )
        for key in parser[section]:
            if (section, key) not in index:
                valid = ", ".join(s.key for s in SETTINGS if s.section == section)
                raise ConfigError(
                    f"Unknown key {_where(section, key, path)}: expected one of {valid}."
                )

    values: dict[tuple[str, str], Any] = {}
    raw: dict[tuple[str, str], str] = {}
    explicit = set()
    for setting in SETTINGS:
        where = (setting.section, setting.key)
        if where in overrides:
            text_value = overrides[where]
            explicit.add(where)
        elif parser.has_option(setting.section, setting.key):
            text_value = parser.get(setting.section, setting.key)
            explicit.add(where)
        else:
            text_value = setting.default
        try:
            values[where] = setting.convert(text_value)
        except ValueError as error:
            shown = "(hidden)" if setting.secret else f'"{text_value}"'
            reason = (error.reason if isinstance(error, Rejected)
                      else f"expected {setting.convert.expected}")
            raise ConfigError(
                f"Invalid value {shown} for {_where(setting.section, setting.key, path)}: "
                f"{reason}."
            ) from None
        raw[where] = text_value
    config = Config(values, path, raw)
    config._explicit = frozenset(explicit)
    _check_across_keys(config)
    return config


# ---------------------------------------------------------------------------
# Rules that involve more than one key, checked after every value converted.
# Each takes one section's values and returns the problem with its fix, or None.


def _freshness_order(health: Section) -> str | None:
    warn, fail = health.freshness_warn_minutes, health.freshness_fail_minutes
    if fail > warn:
        return None
    return (f"freshness_fail_minutes ({fail}) must be more than freshness_warn_minutes "
            f"({warn}). Raise freshness_fail_minutes or lower freshness_warn_minutes")


def _disk_order(health: Section) -> str | None:
    warn, fail = health.disk_warn_free_mib, health.disk_fail_free_mib
    if fail < warn or warn == 0:
        return None
    return (f"disk_fail_free_mib ({fail}) must be less than disk_warn_free_mib ({warn}). "
            "Lower disk_fail_free_mib or raise disk_warn_free_mib")


def _daily_rotation_interval(logging: Section) -> str | None:
    if logging.interval == 1 or not (logging.when == "midnight" or logging.when.startswith("w")):
        return None
    return (f"interval ({logging.interval}) must be 1 when = {logging.when}, because that "
            "rotation happens once per day or week. Use when = d with an interval for a "
            "rotation every few days")


def _log_folder_size(logging: Section) -> str | None:
    if logging.max_total_mib >= 3 * logging.max_file_mib:
        return None
    return (f"max_total_mib ({logging.max_total_mib}) must be at least three times "
            f"max_file_mib ({logging.max_file_mib}), because app.log, errors.log and "
            "access.log may each reach max_file_mib")


_EMAIL_KEYS = ("smtp_host", "email_from", "email_to")


def _email_complete(notify: Section) -> str | None:
    given = [key for key in _EMAIL_KEYS if notify[key]]
    if not given or len(given) == len(_EMAIL_KEYS):
        return None
    missing = ", ".join(key for key in _EMAIL_KEYS if key not in given)
    return (f"{', '.join(given)} set but {missing} missing. Set all of smtp_host, "
            "email_from and email_to, or none of them")


CROSS_KEY_RULES: tuple[tuple[str, Callable[[Section], str | None]], ...] = (
    ("health", _freshness_order),
    ("health", _disk_order),
    ("logging", _daily_rotation_interval),
    ("logging", _log_folder_size),
    ("notify", _email_complete),
)


def _check_across_keys(config: Config) -> None:
    for section, rule in CROSS_KEY_RULES:
        problem = rule(getattr(config, section))
        if problem is not None:
            raise ConfigError(f"Invalid settings in [{section}] of {config.source}: "
                              f"{problem}.")


def iter_sections() -> Iterable[tuple[str, list[Setting]]]:
    order: dict[str, list[Setting]] = {}
    for setting in SETTINGS:
        order.setdefault(setting.section, []).append(setting)
    return order.items()


def render_example_ini() -> str:
    """Render ``config.example.ini``: every setting, commented out at its default."""
    lines = [
        "# Phonebook Appliance configuration.",
        "# Every key is shown at its default, commented out. Uncomment and edit the ones",
        "# you need; docs/configuration.md describes each key.",
    ]
    for section, settings in iter_sections():
        lines += ["", f"[{section}]"]
        for setting in settings:
            unit = f" Unit: {setting.unit}." if setting.unit else ""
            lines += textwrap.wrap(setting.help + unit, width=86, initial_indent="# ",
                                   subsequent_indent="# ")
            lines.append(f"#{setting.key} = {setting.default}".rstrip())
    return "\n".join(lines) + "\n"


def render_reference_markdown() -> str:
    """Render the settings tables of ``docs/configuration.md``."""
    lines: list[str] = []
    for section, settings in iter_sections():
        lines += [f"### [{section}]", "", "| key | default | unit | meaning | accepted values |",
                  "|---|---|---|---|---|"]
        for setting in settings:
            default = f"`{setting.default}`" if setting.default else "(empty)"
            cells = [f"`{setting.key}`", default, setting.unit or "",
                     setting.help, setting.convert.expected]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)
