"""Choose the charset of a response from the charsets a phone accepts."""

from __future__ import annotations

from appliance.cisco.text import LATIN1, UTF8

# Models that take UTF-8 but can only show the Latin-1 glyphs of their locale
# (Cisco IP Phone Services Application Development Notes, 7.1(3), p. 6-6). They
# send "Accept-Charset: iso-8859-1, utf-8;q=0.8"; the list covers firmware or
# proxies that drop the header.
_LATIN1_MODELS = ("CP-7902", "CP-7905", "CP-7910", "CP-7912", "CP-7940", "CP-7960")

_LATIN1_ALIASES = frozenset(
    {
        "iso-8859-1",
        "iso8859-1",
        "latin1",
        "latin-1",
        "l1",
        "iso_8859-1",
        "us-ascii",
        "ascii",
    }
)
_UTF8_ALIASES = frozenset({"utf-8", "utf8"})


def _parse_accept_charset(header: str) -> dict[str, float]:
    """Return ``{charset: quality}`` of an Accept-Charset header, skipping bad parts."""
    qualities: dict[str, float] = {}
    for part in header.split(","):
        name, _, parameters = part.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        quality = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if name in _UTF8_ALIASES:
            name = UTF8
        elif name in _LATIN1_ALIASES:
            name = LATIN1
        qualities[name] = max(quality, qualities.get(name, 0.0))
    return qualities


def negotiate_charset(accept_charset: str | None, model_name: str | None = None) -> str:
    """Return ``utf-8`` or ``iso-8859-1`` for a phone's request headers.

    UTF-8 is chosen when the phone ranks it at least as high as ISO-8859-1.
    ISO-8859-1 counts as accepted at full quality when the header does not name it,
    as HTTP/1.1 (RFC 2616, section 14.2) had it. So "iso-8859-1, utf-8;q=0.8" and
    "utf-8;q=0.8" both give ISO-8859-1. Without
    the header, Latin-1-only models (``x-CiscoIPPhoneModelName``) get ISO-8859-1
    and everything else, browsers included, gets UTF-8.
    """
    qualities = _parse_accept_charset(accept_charset or "")
    if not qualities:
        model = (model_name or "").strip().upper()
        if model.startswith(_LATIN1_MODELS):
            return LATIN1
        return UTF8
    wildcard = qualities.get("*")
    utf8 = qualities.get(UTF8, wildcard if wildcard is not None else 0.0)
    latin1 = qualities.get(LATIN1, wildcard if wildcard is not None else 1.0)
    if utf8 > 0 and utf8 >= latin1:
        return UTF8
    return LATIN1


def content_type(charset: str) -> str:
    """Return the Content-Type header value for a Cisco XML object in ``charset``."""
    return f"text/xml; charset={charset}"
