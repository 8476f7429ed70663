"""Parsing of stored phone numbers into E.164 and an extension."""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

# An extension at the end of a number: "ext. 42", "extension 42", "x42", ";ext=42".
_EXTENSION = re.compile(r"(?i)\s*(?:;\s*ext=|(?<![a-z])(?:ext(?:ension)?\.?|x))\s*(\d+)\s*$")
# Dashes that NFKC leaves as they are (U+2010 to U+2015, U+2212 minus sign).
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))


def normalize_written(raw: str) -> str:
    """Return a number as written with full-width characters and dashes made ASCII.

    NFKC turns full-width digits, "+" and brackets (as typed with a Japanese or
    Chinese input method) into their ASCII forms.
    """
    text = raw or ""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def split_extension(text: str) -> tuple[str, str | None]:
    """Return ``(number, extension digits)``; the extension is None when none is written."""
    match = _EXTENSION.search(text)
    if match is None:
        return text, None
    return text[: match.start()], digits_of(match.group(1))


def parse_number(raw: str, home_country: str) -> tuple[str | None, str | None]:
    """Return ``(e164, extension)`` for a number as written, or ``(None, None)``.

    Numbers with no country code are read as numbers of ``home_country`` (an ISO
    3166 two-letter code). The extension is kept apart because E.164 cannot carry
    one ("ext. 42", "x42" and "tel:...;ext=42" all give "42"). An extension longer
    than libphonenumber takes (20 digits) is split off here, so the number itself
    still parses.
    """
    text = (raw or "").strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    if not any(character.isdigit() for character in text):
        return None, None
    e164, extension = _parse_possible(text, home_country)
    if e164 is None:
        number, written_extension = split_extension(normalize_written(text))
        if written_extension is not None:
            e164, _ = _parse_possible(number, home_country)
            extension = written_extension
    return e164, extension


def _parse_possible(text: str, home_country: str) -> tuple[str | None, str | None]:
    try:
        parsed = phonenumbers.parse(text, home_country.upper())
    except phonenumbers.NumberParseException:
        return None, None
    extension = parsed.extension or None
    # Local-only numbers (a US number without its area code) have no E.164 form.
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None, extension
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164, extension


def fits_numbering_plan(country_code: int, national_number: str) -> bool:
    """Tell whether a national number has a form its country's numbering plan uses.

    The test is libphonenumber's general pattern for the country, which every valid
    number matches. It rejects "089 7654321" read as a US number, because no US area
    code starts with 0. Unlike ``is_valid_number`` it accepts numbers in ranges
    opened after the metadata was built.
    """
    pattern = _general_pattern(country_code)
    return pattern is not None and pattern.fullmatch(national_number) is not None


@functools.lru_cache(maxsize=None)
def _general_pattern(country_code: int) -> re.Pattern[str] | None:
    region = phonenumbers.region_code_for_country_code(country_code)
    if region == phonenumbers.UNKNOWN_REGION:
        return None
    if region == "001":  # non-geographic codes, such as +800 freephone
        metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(country_code)
    else:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.general_desc is None:
        return None
    pattern = metadata.general_desc.national_number_pattern
    return re.compile(pattern) if pattern else None


_NOT_DIGIT = re.compile(r"\D+")


def digits_of(text: str) -> str:
    """Return the ASCII digits of ``text``, reading any Unicode digit as its value."""
    digits = _NOT_DIGIT.sub("", text)
    if not digits.isascii():
        digits = "".join(str(int(character)) for character in digits)
    return digits


def split_e164(e164: str) -> tuple[int, str] | None:
    """Return ``(country_code, national_number)`` of an E.164 string such as +4930123.

    Country codes are prefix-free, so the first one to 3 digits that name a known
    code are the country code. The rest is the national significant number, which
    keeps Italy's leading zero.
    """
    digits = e164[1:] if e164.startswith("+") else e164
    for length in (1, 2, 3):
        code = int(digits[:length] or 0)
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[length:]
    return None


def usual_international_prefix(region: str) -> str:
    """Return the digits that start an international call from ``region``."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return "00"
    # "~" in libphonenumber's metadata means "wait for a second dial tone" (8~10 in
    # Russia); a comma makes the phone pause one second instead.
    for prefix in (
        metadata.preferred_international_prefix,
        metadata.international_prefix,
    ):
        if prefix and all(
            character.isdigit() or character == "~" for character in prefix
        ):
            return prefix.replace("~", ",")
    # NOTE: where the metadata gives only a pattern (Brazil's carrier codes), 00 is a
    # guess, and [dialplan] international_prefix overrides it.
    return "00"


def usual_national_prefix(region: str) -> str:
    """Return the trunk prefix of national calls in ``region`` (0 in Germany, 1 in
    North America), or an empty string where there is none (Italy)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.national_prefix:
        return ""
    return metadata.national_prefix
