"""Parsing of stored phone numbers into E.164 and an extension."""

from __future__ import annotations

import phonenumbers


def parse_number(raw: str, home_country: str) -> tuple[str | None, str | None]:
    """Return ``(e164, extension)`` for a number as written, or ``(None, None)``.

    Numbers with no country code are read as numbers of ``home_country`` (an ISO
    3166 two-letter code). The extension is kept apart because E.164 cannot carry
    one ("ext. 42", "x42" and "tel:...;ext=42" all give "42").
    """
    text = (raw or "").strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    if not any(character.isdigit() for character in text):
        return None, None
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
