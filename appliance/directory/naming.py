"""Names of contacts as the phone shows them, folded forms for search and sorting."""

from __future__ import annotations

import re

from anyascii import anyascii

from appliance.model import Contact
from appliance.sources.entries import normalize_type_label

_NOT_ALPHANUMERIC = re.compile(r"[^0-9a-z]+")
_INNER_PUNCTUATION = re.compile(r"['\u2019.\-]")

_KEYPAD_LETTERS = {
    "2": "abc",
    "3": "def",
    "4": "ghi",
    "5": "jkl",
    "6": "mno",
    "7": "pqrs",
    "8": "tuv",
    "9": "wxyz",
}
_KEYPAD_TABLE = str.maketrans(
    {letter: digit for digit, letters in _KEYPAD_LETTERS.items() for letter in letters}
)


def fold(text: str) -> str:
    """Return ``text`` in lowercase ASCII for matching (Müller→muller)."""
    if not text.isascii():
        text = anyascii(text)
    return text.lower()


def words_of(text: str) -> list[str]:
    """Return the folded words of ``text``, plus each word written with inner
    punctuation joined up, so O'Brien gives o, brien and obrien."""
    if text.isalnum() and text.isascii():
        return [text.lower()]
    folded = fold(text)
    words = [word for word in _NOT_ALPHANUMERIC.split(folded) if word]
    for chunk in folded.split():
        joined = _NOT_ALPHANUMERIC.sub("", _INNER_PUNCTUATION.sub("", chunk))
        if joined and joined not in words:
            words.append(joined)
    return words


def query_words(text: str) -> list[str]:
    """Return the folded words of a search query, split at every non-letter."""
    return [word for word in _NOT_ALPHANUMERIC.split(fold(text)) if word]


def keypad_digits(word: str) -> str:
    """Return the keys a phone keypad uses to type a folded word (ada→232).

    Folded words hold only a-z and 0-9, and digits are typed as themselves.
    """
    return word.translate(_KEYPAD_TABLE)


def person_name(contact: Contact, name_format: str) -> str:
    """Return the contact's own name in ``name_format``, or an empty string."""
    given = " ".join(contact.given_name.split())
    family = " ".join(contact.family_name.split())
    if given and family:
        if name_format == "family_given":
            return f"{family}, {given}"
        return f"{given} {family}"
    return given or family or " ".join(contact.display_name.split())


def contact_name(contact: Contact, name_format: str) -> str:
    """Return the name a phone shows for a contact, never empty.

    The first non-empty one wins: the person's name, nickname, company, job title,
    then the first number as written. So a company-only contact shows its company.
    """
    candidates = (
        person_name(contact, name_format),
        contact.nickname,
        contact.company,
        contact.job_title,
    )
    for candidate in candidates:
        candidate = " ".join(candidate.split())
        if candidate:
            return candidate
    for number in contact.numbers:
        if number.raw.strip():
            return " ".join(number.raw.split())
    return "(no name)"


def sort_text(contact: Contact, shown_name: str, sort: str) -> str:
    """Return the folded text a contact sorts and browses by.

    ``sort`` is family, given or display. A contact without the chosen part sorts
    by the name it shows, so a company-only contact files under its company.
    """
    if sort == "family" and contact.family_name.strip():
        parts = (contact.family_name, contact.given_name, contact.middle_name)
    elif sort == "given" and contact.given_name.strip():
        parts = (contact.given_name, contact.family_name, contact.middle_name)
    else:
        parts = (shown_name,)
    return " ".join(
        " ".join(_NOT_ALPHANUMERIC.split(fold(part))).strip()
        for part in parts
        if part.strip()
    )


def search_words(contact: Contact) -> set[str]:
    """Return the folded words name search matches for a contact."""
    words: set[str] = set()
    for text in (
        contact.given_name,
        contact.family_name,
        contact.middle_name,
        contact.display_name,
        contact.company,
        contact.nickname,
    ):
        if text:
            words.update(words_of(text))
    return words


def number_labels(labels: list[str]) -> list[str]:
    """Return one distinct label per number: repeats get 2, 3, … appended.

    With two or more numbers, an unlabelled one is numbered too, so ``["", ""]``
    gives ``["", "2"]`` and the phone shows "Ada Lovelace" and "Ada Lovelace (2)".
    Standard types are shown in lowercase whatever the source wrote, so Google's
    "Mobile" and an imported "mobile" read the same.
    """
    seen: dict[str, int] = {}
    result = []
    for label in labels:
        label = normalize_type_label(label)
        key = label.casefold()
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 1:
            result.append(label)
        else:
            result.append(f"{label} {seen[key]}".strip())
    return result
