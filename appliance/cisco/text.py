"""Text rules of Cisco IP phone objects: clean characters, charset, length limits."""

from __future__ import annotations

import unicodedata

from anyascii import anyascii

UTF8 = "utf-8"
LATIN1 = "iso-8859-1"
CHARSETS = (UTF8, LATIN1)

# Maximum lengths from CiscoIPPhone.xsd (schema version 3.3.4), in characters.
TITLE_MAX = 32
PROMPT_MAX = 32
MENU_ITEM_NAME_MAX = 64
ENTRY_NAME_MAX = 32
TELEPHONE_MAX = 32
SOFTKEY_NAME_MAX = 32
URL_MAX = 256
INPUT_DISPLAY_NAME_MAX = 32
INPUT_PARAM_MAX = 32
INPUT_DEFAULT_MAX = 32
TEXT_MAX = 4000

# Characters a phone may dial in a Telephone element or a Dial: URI.
DIALABLE = frozenset("0123456789*#,")

# XML 1.0 forbids C0 controls except TAB, LF and CR; the phones' "8-bit text" shows
# C1 controls and format characters (zero-width spaces, bidi marks, soft hyphens) as
# garbage. Lone surrogates and U+FFFE/U+FFFF cannot be encoded at all.
_UNWANTED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Co"})
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")


def clean_text(text: str, multiline: bool = False) -> str:
    """Remove characters a phone cannot show, and join lines unless ``multiline``.

    Characters outside the Basic Multilingual Plane (emoji, historic scripts) are
    removed: 79xx fonts and parsers stop at U+FFFF. Multiline text keeps TAB, CR
    and LF, the only controls CiscoIPPhoneText allows.
    """
    # Most names need no cleaning. isprintable() is false for every character the
    # loop below removes or replaces, except those above U+FFFF.
    if text.isprintable() and (text.isascii() or max(text) <= "\uffff"):
        return text.strip() if multiline else " ".join(text.split())
    kept = []
    for character in text:
        if ord(character) > 0xFFFF:
            continue
        if character == "\t" or character in _LINE_BREAKS:
            if not multiline:
                kept.append(" ")
            elif character in "\t\r\n":
                kept.append(character)
            else:
                kept.append("\n")
        elif unicodedata.category(character) not in _UNWANTED_CATEGORIES:
            kept.append(character)
    cleaned = "".join(kept)
    if multiline:
        return cleaned.strip()
    return " ".join(cleaned.split())


def transliterate(text: str, charset: str, ascii_only: bool = False) -> str:
    """Return ``text`` with every character ``charset`` cannot encode spelt in ASCII.

    For ISO-8859-1, Latin-1 letters such as é and ü stay, and the rest are spelt
    out: ł→l, ’→', “”→", Œ→Oe, Cyrillic and CJK in Latin letters. With
    ``ascii_only``, Latin-1 letters are spelt out too (ä→a, ß→ss), for phones
    whose locale shows no accented letters. UTF-8 text is returned unchanged.
    """
    if charset == UTF8:
        return text
    limit = 0x80 if ascii_only else 0x100
    if all(ord(character) < limit for character in text):
        return text
    pieces = []
    for character in text:
        if ord(character) < limit:
            pieces.append(character)
        else:
            pieces.append(anyascii(character) or "?")
    return "".join(pieces)


def ellipsis_for(charset: str) -> str:
    """Return the ellipsis that ``charset`` can encode."""
    return "\u2026" if charset == UTF8 else "..."


def fit(text: str, limit: int, charset: str = UTF8) -> str:
    """Cut ``text`` to ``limit`` characters, ending in an ellipsis when cut."""
    if len(text) <= limit:
        return text
    ellipsis = ellipsis_for(charset)
    return text[: limit - len(ellipsis)].rstrip() + ellipsis


def fit_label(name: str, label: str, limit: int, charset: str = UTF8) -> str:
    """Join ``name`` and ``(label)`` within ``limit``, cutting the name first.

    The label distinguishes two numbers of one contact, so it survives when the
    name is too long. Only a label too long on its own is cut as well.
    """
    if not label:
        return fit(name, limit, charset)
    suffix = fit(f"({label})", limit // 2, charset)
    if not name:
        return suffix
    return fit(name, limit - len(suffix) - 1, charset) + " " + suffix


def dialable(telephone: str) -> str:
    """Keep only the characters a phone dials, cut to the Telephone limit.

    NOTE: the dial plan keeps dial strings within TELEPHONE_MAX. The cut here is a
    last guard and adds no ellipsis, because the phone would dial it.
    """
    return "".join(character for character in telephone if character in DIALABLE)[
        :TELEPHONE_MAX
    ]


def fit_url(url: str) -> str:
    """Cut ``url`` to URL_MAX characters without splitting a %XX escape.

    An ellipsis would change the address, so a cut URL simply ends early. Callers
    build URLs that fit (the web routes shorten search text first); this guard
    keeps the object valid when they do not.
    """
    if len(url) <= URL_MAX:
        return url
    cut = url[:URL_MAX]
    escape = cut.rfind("%")
    if escape >= URL_MAX - 2:
        cut = cut[:escape]
    return cut
