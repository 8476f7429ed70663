"""Turn People API ``Person`` objects into the appliance's contacts."""

from __future__ import annotations

from typing import Any, Iterable

from appliance.directory.numbers import parse_number
from appliance.model import Contact, PhoneNumber


def _pick(items: Any) -> dict[str, Any] | None:
    """Return the primary item of a Person field, else the first one.

    Google gives items in no fixed order and marks exactly one per field as
    primary across sources, so the first item is only a fallback.
    """
    if not isinstance(items, list):
        return None
    candidates = [item for item in items if isinstance(item, dict)]
    for item in candidates:
        if (item.get("metadata") or {}).get("primary"):
            return item
    return candidates[0] if candidates else None


def _text(item: dict[str, Any] | None, key: str) -> str:
    if not item:
        return ""
    value = item.get(key)
    return " ".join(value.split()) if isinstance(value, str) else ""


def _organization(person: dict[str, Any]) -> dict[str, Any] | None:
    organizations = [item for item in person.get("organizations") or []
                     if isinstance(item, dict)]
    current = [item for item in organizations if item.get("current")]
    return _pick(current) or _pick(organizations)


def _numbers(person: dict[str, Any], home_country: str) -> list[PhoneNumber]:
    numbers = []
    seen = set()
    for item in person.get("phoneNumbers") or []:
        if not isinstance(item, dict):
            continue
        raw = _text(item, "value")
        canonical = _text(item, "canonicalForm")
        if not raw and not canonical:
            continue
        e164, extension = parse_number(raw or canonical, home_country)
        if e164 is None and canonical.startswith("+"):
            e164 = canonical
        key = (e164 or raw, extension)
        if key in seen:
            continue  # the same number from the contact and the profile source
        seen.add(key)
        numbers.append(PhoneNumber(
            raw=raw or canonical,
            type_label=_text(item, "formattedType") or _text(item, "type"),
            is_primary=bool((item.get("metadata") or {}).get("primary")),
            e164=e164, extension=extension))
    return numbers


def group_names(person: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Return the names of the labels ``person`` belongs to, from ``labels`` only."""
    names = set()
    for membership in person.get("memberships") or []:
        if not isinstance(membership, dict):
            continue
        group = (membership.get("contactGroupMembership") or {}).get(
            "contactGroupResourceName")
        if group in labels:
            names.add(labels[group])
    return sorted(names)


def is_deleted(person: dict[str, Any]) -> bool:
    return bool((person.get("metadata") or {}).get("deleted"))


def previous_names(person: dict[str, Any]) -> list[str]:
    previous = (person.get("metadata") or {}).get("previousResourceNames") or []
    return [name for name in previous if isinstance(name, str) and name]


def person_to_contact(person: dict[str, Any], source: str, labels: dict[str, str],
                      home_country: str) -> Contact | None:
    """Return the contact for ``person``, or None when it has no number to dial.

    ``labels`` maps contact group resource names to the label names kept.
    """
    resource_name = person.get("resourceName")
    if not isinstance(resource_name, str) or not resource_name:
        return None
    numbers = _numbers(person, home_country)
    if not numbers:
        return None
    name = _pick(person.get("names"))
    organization = _organization(person)
    display = _text(name, "displayName") or _text(name, "unstructuredName")
    return Contact(
        source=source,
        source_id=resource_name,
        given_name=_text(name, "givenName"),
        family_name=_text(name, "familyName"),
        middle_name=_text(name, "middleName"),
        display_name=display or _text(organization, "name"),
        nickname=_text(_pick(person.get("nicknames")), "value"),
        company=_text(organization, "name"),
        job_title=_text(organization, "title"),
        labels=group_names(person, labels),
        numbers=numbers,
        origin=f"Google {resource_name}",
        etag=person.get("etag") if isinstance(person.get("etag"), str) else "",
    )


def passes_label_filter(person: dict[str, Any], labels: dict[str, str],
                        include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Tell whether a person's labels pass ``[google] labels_include/_exclude``.

    Label names compare without regard to case, as Google shows them.
    """
    names = {name.casefold() for name in group_names(person, labels)}
    include = {name.casefold() for name in include}
    exclude = {name.casefold() for name in exclude}
    if include and not names & include:
        return False
    return not names & exclude
