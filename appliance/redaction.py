"""Mask secrets in log records and in any text that leaves the appliance.

Three rules work together, so a secret is caught however it reaches a log line:

- by key: a value stored under a secret-looking name (``password``, ``client_secret``,
  ``Authorization``, ``refresh_token`` …) in the extra fields of a record, or in a
  dict or list inside them, is masked whatever it looks like;
- by shape: inside any text, the rules mask ``Authorization`` and ``Cookie`` headers,
  bearer credentials and ``name=value`` pairs of secret names (URL queries, form
  bodies, JSON, Python reprs). They also mask passwords in URLs, PEM private keys,
  JSON Web Tokens and Google's token formats: ``ya29.`` access tokens, ``1//``
  refresh tokens, ``4/`` codes and ``GOCSPX-`` client secrets;
- by value: every secret setting of the config file, and any value passed to
  ``register_secret``, is masked wherever it appears.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any, Iterable

MASK = "[REDACTED]"

# Shorter secret values are not registered: masking every "1234" would wreck logs.
MIN_REGISTERED_LENGTH = 8

# Names compared after lowercasing and reading "-" as "_".
_SECRET_NAMES = frozenset({
    "authorization", "proxy_authorization", "cookie", "set_cookie", "code", "auth_code",
    "authorization_code", "credentials", "assertion", "private_key", "api_key", "apikey",
    "password_hash", "client_secret", "webhook_url",
})
_SECRET_SUFFIXES = ("password", "passwd", "secret", "token")

_QUERY_NAMES = (r"access_token|refresh_token|id_token|client_secret|code|authorization_code|password|passwd"
                r"|pwd|token|api_key|apikey|key|assertion|sync_token|secret|sig|signature")
_PAIR_NAMES = (r"access_token|refresh_token|id_token|client_secret|password|passwd"
               r"|private_key|api_key|sync_token|authorization_code|assertion|secret|token")

_PROSE_SEPARATOR = re.compile(r":[ \t]+")
_PROSE_WORD = re.compile(r"[a-z]{1,12}")
_NEXT_WORD = re.compile(r"[ \t]+[a-z]")


def _mask_pair_value(match: re.Match[str]) -> str:
    """Mask the value of ``name: value`` unless it reads as prose ("token: run").

    A value is left only when it is unquoted after a colon and a space, is one
    short lowercase word, and another word follows, as in the hint "it holds a
    password hash or token: run chmod 640 …". Tokens and generated passwords have
    digits, capitals or symbols, and the values of secret settings are masked
    wherever they appear anyway.
    """
    prefix, name, value = match.group(1, 2, 3)
    separator = prefix[len(name):]
    if (_PROSE_SEPARATOR.fullmatch(separator) and _PROSE_WORD.fullmatch(value)
            and _NEXT_WORD.match(match.string, match.end())):
        return match.group(0)
    return prefix + MASK


# (pattern, replacement) pairs, applied in order. Each keeps the name and masks the value.
_TEXT_RULES: tuple[tuple[re.Pattern[str], Any], ...] = (
    # PEM private keys, also when their newlines are escaped inside JSON.
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
                re.DOTALL), MASK),
    # Authorization headers, with or without a scheme word.
    (re.compile(r"(?i)(\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
                r"((?:bearer|basic|digest|token)\s+)?[^\s\"',;}\]]+"), r"\1\2" + MASK),
    # Cookie and Set-Cookie headers: everything up to the end of the line or quote.
    (re.compile(r"(?i)(\b(?:set-)?cookie[\"']?\s*[:=]\s*[\"']?)[^\r\n\"']+"), r"\1" + MASK),
    # Bearer credentials anywhere.
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + MASK),
    # name=value in URL queries and form bodies.
    (re.compile(rf"(?i)((?:^|[?&;\s,(\"'])(?:{_QUERY_NAMES})=)[^&\s\"'#;,)]+"), r"\1" + MASK),
    # name: value and name=value in JSON, reprs and prose, for unambiguous names.
    (re.compile(rf"(?i)((\b(?:{_PAIR_NAMES})[\"']?)\s*[:=]\s*[\"']?)(?!\[REDACTED\])"
                rf"([^\s\"',}}&;]+)"),
     _mask_pair_value),
    # "code": "…" in JSON and reprs (bare "code:" in prose is usually a status code).
    (re.compile(r"""((["'])code\2\s*:\s*(["']))[^"']+"""), r"\1" + MASK),
    # Passwords in URLs: scheme://user:password@host.
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1" + MASK + "@"),
    # Token shapes: JSON Web Tokens, Google access and refresh tokens, codes, client secrets.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"\bya29\.[0-9A-Za-z_.\-]+"), MASK),
    (re.compile(r"(?<![\w/])1//[0-9A-Za-z_\-]{10,}"), MASK),
    (re.compile(r"(?<![\w/])4/[0-9A-Za-z_\-]{10,}"), MASK),
    (re.compile(r"\bGOCSPX-[0-9A-Za-z_\-]{6,}"), MASK),
    # Slack-style webhook URLs carry their secret in the path.
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"']+"), r"\1" + MASK),
)

# Cheap tests that find every text a rule above could change, so the common text
# with no secret in it skips the rules. They run on the lowercased text, because
# case-insensitive regular expressions are several times slower in CPython 3.11.
_MARKERS = re.compile(r"private key|authorization|cookie|bearer|eyj|ya29\.|1//|4/|gocspx-"
                      r"|hooks\.slack\.com")
_NAME_TRIGGER = re.compile(rf"(?:{_QUERY_NAMES}|{_PAIR_NAMES})[\"']?\s*[:=]")
# Texts up to this long are cached with their redacted form, because access lines
# repeat the same routes, user agents and addresses.
_CACHED_TEXT_MAX_CHARS = 256
_CACHE_SIZE = 4096


def _may_hold_secret(text: str) -> bool:
    lowered = text.lower()
    if _MARKERS.search(lowered):
        return True
    if "@" in lowered and "://" in lowered:
        return True
    return ("=" in lowered or ":" in lowered) and _NAME_TRIGGER.search(lowered) is not None


_registered: set[str] = set()
_registered_lock = threading.Lock()
_registered_sorted: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears in later log lines and redacted text.

    Values shorter than MIN_REGISTERED_LENGTH characters are ignored.
    """
    global _registered_sorted
    if not value or len(value) < MIN_REGISTERED_LENGTH:
        return
    with _registered_lock:
        if value in _registered:
            return
        _registered.add(value)
        # Longest first, so a secret that contains another is masked whole.
        _registered_sorted = tuple(sorted(_registered, key=len, reverse=True))
        _redact_short_text.cache_clear()


def register_config_secrets(config: Any) -> None:
    """Register the value of every setting marked secret in the settings table."""
    from appliance.config import SETTINGS

    for setting in SETTINGS:
        if setting.secret:
            value = config.get(setting.section, setting.key)
            register_secret(str(value) if value else None)


@functools.lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """Return True when a field, header or parameter name marks its value as secret."""
    normalised = name.lower().replace("-", "_")
    return normalised in _SECRET_NAMES or normalised.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """Return ``text`` with every secret it contains replaced by ``[REDACTED]``."""
    if len(text) <= _CACHED_TEXT_MAX_CHARS:
        return _redact_short_text(text)
    return _redact(text)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _redact_short_text(text: str) -> str:
    return _redact(text)


def _redact(text: str) -> str:
    for secret in _registered_sorted:
        if secret in text:
            text = text.replace(secret, MASK)
    if not _may_hold_secret(text):
        return text
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, name: str | None = None) -> Any:
    """Return ``value`` with secrets masked, walking into dicts, lists and tuples.

    A string, bytes or container value under a secret ``name`` is masked whole;
    numbers, booleans and None are kept, because they carry no secret.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if name is not None and is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_value(item, str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(item) for item in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return redact_text(str(value))


# Attributes every LogRecord has; everything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_EXCEPTION_FORMATTER = logging.Formatter()


class RedactionFilter(logging.Filter):
    """Mask secrets in a record's message, extra fields, exception and stack text.

    The record is changed in place, so the handlers that run after this one receive
    only the masked record. The exception is kept as text (``exc_text``) and
    ``exc_info`` is cleared, because formatters would otherwise render the traceback
    again from the live exception.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            self._redact(record)
        except Exception:
            # A filter that raises would reach the code that logged, so fail closed:
            # keep the logger name and level, drop everything that could hold a secret.
            record.msg, record.args = "log record dropped: redaction failed", None
            record.exc_info = record.exc_text = record.stack_info = None
            for name in _extra_names(record):
                del record.__dict__[name]
        record._redacted = True
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            record.msg = redact_value(record.msg)
        else:
            record.msg = redact_text(record.getMessage())
            record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for name in _extra_names(record):
            record.__dict__[name] = redact_value(record.__dict__[name], name)


def _extra_names(record: logging.LogRecord) -> Iterable[str]:
    return [name for name in record.__dict__
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_")]
