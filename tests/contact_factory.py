"""Contacts for tests, built the way the importer stores them."""

from __future__ import annotations

from appliance.directory.numbers import parse_number
from appliance.model import Contact, PhoneNumber


def imported_contact(source_id: str, given: str = "", family: str = "",
                     *numbers: tuple[str, str], **fields: str) -> Contact:
    """Build an imported contact; numbers are (raw, label), parsed with home country US."""
    parsed = []
    for position, (raw, label) in enumerate(numbers):
        e164, extension = parse_number(raw, "US")
        parsed.append(PhoneNumber(raw=raw, type_label=label, is_primary=position == 0,
                                  e164=e164, extension=extension))
    return Contact("import", source_id, given_name=given, family_name=family,
                   numbers=parsed, **fields)
