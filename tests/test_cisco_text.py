"""Cleaning text for phones: the quick path for printable text against the full rules."""

from __future__ import annotations

import unicodedata

import pytest

from appliance.cisco.text import clean_text

UNWANTED = frozenset({"Cc", "Cf", "Cs", "Cn", "Co"})
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")


def clean_each_character(text: str, multiline: bool = False) -> str:
    """Apply the cleaning rules one character at a time, with no quick path."""
    kept = []
    for character in text:
        if ord(character) > 0xFFFF:
            continue
        if character == "\t" or character in LINE_BREAKS:
            if not multiline:
                kept.append(" ")
            elif character in "\t\r\n":
                kept.append(character)
            else:
                kept.append("\n")
        elif unicodedata.category(character) not in UNWANTED:
            kept.append(character)
    cleaned = "".join(kept)
    return cleaned.strip() if multiline else " ".join(cleaned.split())


@pytest.mark.parametrize("text, expected", [
    ("Ada Lovelace", "Ada Lovelace"),
    ("  Ada   Lovelace  ", "Ada Lovelace"),
    ("Søren Kierkegaard", "Søren Kierkegaard"),
    ("Иван Петров", "Иван Петров"),
    ("Ada\u00a0Lovelace", "Ada Lovelace"),
    ("Ada\u200bLovelace", "AdaLovelace"),
    ("Ada \U0001f600 Lovelace", "Ada Lovelace"),
    ("Ada\tLovelace\nLondon", "Ada Lovelace London"),
    ("", ""),
])
def test_clean_text_single_line(text, expected):
    assert clean_text(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("  First line  ", "First line"),
    ("One\r\nTwo\u2028Three", "One\r\nTwo\nThree"),
    ("Emoji \U0001f600 gone", "Emoji  gone"),
])
def test_clean_text_multiline(text, expected):
    assert clean_text(text, multiline=True) == expected


@pytest.mark.parametrize("multiline", [False, True])
def test_clean_text_matches_rules_per_character(multiline):
    # Every character below U+3400 and a few above, each between two letters and
    # alone, cleaned the quick way (where it applies) and one character at a time.
    characters = [chr(code) for code in range(0x3400)]
    characters += ["\ud800", "\udfff", "\ufeff", "\ufffe", "\uffff", "\ue000",
                   "\U00010000", "\U0001f600"]
    for character in characters:
        for text in (f"a{character}b", character, f" {character} "):
            assert clean_text(text, multiline) == clean_each_character(text, multiline), \
                f"U+{ord(character):04X} in {text!r}"
