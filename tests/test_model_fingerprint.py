"""Contact fingerprints stay the digest of asdict, so stored ones remain comparable."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest

from appliance.model import Contact, PhoneNumber


def asdict_fingerprint(contact: Contact) -> str:
    """Digest the contact the way fingerprints were first made, with asdict."""
    data = asdict(contact)
    for key in ("id", "origin", "etag", "source_id"):
        data.pop(key)
    encoded = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:32]


CONTACTS = [
    Contact("google", "people/c1"),
    Contact("google", "people/c2", given_name="Ada", family_name="Lovelace",
            company="Analytical Engines", labels=["Staff", "Suppliers"],
            numbers=[PhoneNumber("+44 20 7946 0168", "Mobile", True, "+442079460168"),
                     PhoneNumber("(212) 555-0120 ext. 12", "Work", False, "+12125550120",
                                 "12")],
            origin="people/c2", etag="%EgUBAi43PRoEAQIFByIM", id=7),
    Contact("import", "row 3", given_name="Søren", middle_name="Aabye",
            family_name="Kierkegaard", display_name="S. A. Kierkegaard", nickname="Søs",
            job_title="Philosopher \"emeritus\"", numbers=[PhoneNumber("")]),
]


@pytest.mark.parametrize("contact", CONTACTS, ids=["empty", "full", "unicode"])
def test_fingerprint_matches_asdict_digest(contact):
    assert contact.fingerprint() == asdict_fingerprint(contact)


@pytest.mark.parametrize("field, value", [
    ("given_name", "Grace"), ("company", "Navy"), ("labels", ["Staff"]),
    ("numbers", [PhoneNumber("555 0100")]),
])
def test_fingerprint_changes_with_shown_field(field, value):
    changed = Contact("google", "people/c1", **{field: value})
    assert changed.fingerprint() != Contact("google", "people/c1").fingerprint()


@pytest.mark.parametrize("field, value", [
    ("id", 3), ("origin", "file.csv:2"), ("etag", "abc"), ("source_id", "people/c9"),
])
def test_fingerprint_ignores_bookkeeping_field(field, value):
    contact = Contact("google", "people/c1")
    setattr(contact, field, value)
    assert contact.fingerprint() == Contact("google", "people/c1").fingerprint()
