"""Contacts for tests, built the way the importer stores them."""

from __future__ import annotations

from typing import Callable

from appliance.directory.numbers import parse_number
from appliance.model import Contact, PhoneNumber


def imported_contact(
    source_id: str,
    given: str = "",
    family: str = "",
    *numbers: tuple[str, str],
    **fields: str,
) -> Contact:
    """Build an imported contact from (raw, label) numbers, parsed as in the US."""
    parsed = []
    for position, (raw, label) in enumerate(numbers):
        e164, extension = parse_number(raw, "US")
        parsed.append(
            PhoneNumber(
                raw=raw,
                type_label=label,
                is_primary=position == 0,
                e164=e164,
                extension=extension,
            )
        )
    return Contact(
        "import",
        source_id,
        given_name=given,
        family_name=family,
        numbers=parsed,
        **fields,
    )


def family_li_contacts(with_given: int, liam: int, lim: int) -> list[Contact]:
    """Return family name Li alone, Li with given names, and Liam and Lim families.

    A family name that is a prefix of others ("Li" of "Liam") tests browse groups.
    """
    people = [imported_contact("li", "", "Li", ("+1 212 555 0001", "work"))]
    for given, family, count, block in (
        ("Wei", "Li", with_given, 1),
        ("Ann", "Liam", liam, 2),
        ("Bo", "Lim", lim, 3),
    ):
        people += [
            imported_contact(
                f"{family}{i}",
                f"{given}{i:03d}",
                family,
                (f"+1 212 555 {block}{i:03d}", "work"),
            )
            for i in range(count)
        ]
    return people


def numbered_contacts(
    count: int, labels_of: Callable[[int], list[str]] | None = None
) -> list[Contact]:
    """Return ``count`` contacts with two numbers each, for timing the index.

    Names repeat every 997 given and 1009 family names, as in a large company.
    ``labels_of`` gives the labels of contact ``i``.
    """
    return [
        Contact(
            "import",
            str(i),
            given_name=f"Given{i % 997}",
            family_name=f"Family{i % 1009}",
            labels=labels_of(i) if labels_of else [],
            numbers=[
                PhoneNumber(
                    f"+1 {200 + i % 700} 555 {i % 10000:04d}",
                    "work",
                    True,
                    f"+1{200 + i % 700}555{i % 10000:04d}",
                ),
                PhoneNumber(
                    f"+44 20 7946 {i % 10000:04d}",
                    "mobile",
                    False,
                    f"+44207946{i % 10000:04d}",
                ),
            ],
        )
        for i in range(count)
    ]
