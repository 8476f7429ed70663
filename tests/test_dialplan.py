"""The dial plan: stored numbers to the digits the PBX expects."""

from __future__ import annotations

import pytest

from appliance.cisco.text import DIALABLE, TELEPHONE_MAX
from appliance.config import load_config
from appliance.directory.dialplan import MAX_INTERNAL_DIGITS, DialPlan
from appliance.directory.numbers import (
    digits_of,
    fits_numbering_plan,
    normalize_written,
    parse_number,
    split_e164,
)
from appliance.errors import ConfigError


def plan(**settings: str) -> DialPlan:
    overrides = {("dialplan", key): value for key, value in settings.items()}
    return DialPlan.from_config(load_config(None, overrides=overrides))


US = {}
US_NINE = {"outside_line_prefix": "9"}
US_DROP = {"extension": "drop"}
US_INTERNAL = {"outside_line_prefix": "9", "internal_digits": "4"}
DE = {"home_country": "DE", "outside_line_prefix": "0", "internal_digits": "3"}
GB_NO_TRUNK = {"home_country": "GB", "national_prefix": "none"}
IT = {"home_country": "IT"}
JP = {"home_country": "JP"}
# 03-1234-5678 typed with a Japanese input method: full-width digits, minus signs.
FULL_WIDTH_TOKYO = "\uff10\uff13\u2212\uff11\uff12\uff13\uff14\u2212\uff15\uff16\uff17\uff18"
CUSTOM = {
    "international_prefix": "00",
    "national_prefix": "1",
    "extension_pause_seconds": "1",
}


@pytest.mark.parametrize(
    "settings, raw, dialled",
    [
        (US, "+1 (555) 010-2000 ext. 42", "15550102000,,42"),
        (US_NINE, "+1 (555) 010-2000 ext. 42", "915550102000,,42"),
        (US_DROP, "+1 (555) 010-2000 ext. 42", "15550102000"),
        (CUSTOM, "+1 (555) 010-2000 ext. 42", "15550102000,42"),
        (US, "(555) 010-2000", "15550102000"),
        (US, "555.010.2000", "15550102000"),
        (US, "tel:+1-555-010-2000;ext=7", "15550102000,,7"),
        (US, "+44 20 7946 0958", "011442079460958"),
        (US_NINE, "+44 20 7946 0958", "9011442079460958"),
        (US, "+49 (0)30 1234567", "01149301234567"),
        (US, "555-0100 x42", "5550100,,42"),
        (US, "1-800-FLOWERS", "18003569377"),
        (US, "*97", "*97"),
        (US_NINE, "#31#", "#31#"),
        (US, "4021", "4021"),
        (US_INTERNAL, "4021", "4021"),
        (US_INTERNAL, "40 21", "4021"),
        (US_INTERNAL, "40211", "940211"),
        (DE, "+49 30 1234567", "00301234567"),
        (DE, "030 1234567", "00301234567"),
        (DE, "+1 555 010 2000", "00015550102000"),
        (DE, "+39 06 1234 5678", "000390612345678"),
        (DE, "123", "123"),
        (GB_NO_TRUNK, "+44 20 7946 0958", "2079460958"),
        (GB_NO_TRUNK, "020 7946 0958", "2079460958"),
        (IT, "+39 06 1234 5678", "0612345678"),
        (IT, "+1 555 010 2000", "0015550102000"),
        (US, "+999 123456", "011999123456"),
        (US, "\uff15\uff15\uff15 0100", "5550100"),
        # Numbers that do not fit the numbering plan are dialled as written.
        (US, "089 7654321", "0897654321"),
        (US_NINE, "089 7654321", "90897654321"),
        (DE, "089 7654321", "00897654321"),
        (US, FULL_WIDTH_TOKYO, "0312345678"),
        (JP, FULL_WIDTH_TOKYO, "0312345678"),
        (US, "+1 212 555 0123 ext. 123456789012345678901234567890", "12125550123"),
        (US, "+1 212 555 0123 ext. 12345678901234567890123", "12125550123"),
        (US, "(212) 555-0123 x 123456789012345678901234567890", "12125550123"),
        (US_INTERNAL, "\uff14\uff10\uff12\uff11", "4021"),
        (US_INTERNAL, "40\u201321", "4021"),
        (US_INTERNAL, "ext 42", "42"),
        (US_INTERNAL, "Ext. 4021", "4021"),
        (US_INTERNAL, "x42", "42"),
    ],
)
def test_dial_string_table(settings, raw, dialled):
    assert plan(**settings).dial_string(raw) == dialled


@pytest.mark.parametrize("raw", ["", "   ", "n/a", "unknown", "+", "()"])
def test_dial_string_without_digits_none(raw):
    assert plan().dial_string(raw) is None


def test_dial_string_uses_stored_forms():
    dial_plan = plan()
    assert (
        dial_plan.dial_string("written oddly", "+15550102000", "9") == "15550102000,,9"
    )


def test_dial_string_long_extension_dropped():
    dialled = plan(outside_line_prefix="9").dial_string(
        "+44 20 7946 0958", None, "1234567890123456"
    )
    assert dialled == "9011442079460958"


@pytest.mark.parametrize("raw", ["+1 " + "5" * 40, "5" * 40])
def test_dial_string_too_long_none(raw):
    assert plan().dial_string(raw) is None


@pytest.mark.parametrize(
    "settings, raw",
    [(US, "ext 42"), (US_INTERNAL, "ext 42042"), (US, "x 4021")],
)
def test_dial_string_extension_alone_needs_internal_digits(settings, raw):
    assert plan(**settings).dial_string(raw) is None


def test_dial_string_stored_form_outside_plan():
    # A number stored by an earlier version, parsed without the plan check.
    assert plan().dial_string("089 7654321", "+10897654321") == "0897654321"


@pytest.mark.parametrize(
    "raw",
    [
        "+1 (555) 010-2000 ext. 42",
        "+44 20 7946 0958 ext 1234",
        "555-0100",
        "*97",
        "+49 (0)30 1234567",
        "tel:+1-555-010-2000;ext=7",
        "+1 555-0100 #22",
    ],
)
def test_dial_string_only_dialable_characters(raw):
    dialled = plan(outside_line_prefix="9").dial_string(raw)
    assert set(dialled) <= DIALABLE
    assert len(dialled) <= TELEPHONE_MAX


@pytest.mark.parametrize(
    "region, international, national",
    [
        ("US", "011", "1"),
        ("DE", "00", "0"),
        ("GB", "00", "0"),
        ("IT", "00", ""),
        ("AU", "0011", "0"),
        ("RU", "8,10", "8"),
        ("JP", "010", "0"),
    ],
)
def test_dial_plan_usual_prefixes(region, international, national):
    dial_plan = plan(home_country=region)
    assert dial_plan.international_prefix == international
    assert dial_plan.national_prefix == national


def test_dial_plan_lowercase_country_accepted():
    assert plan(home_country="de").home_country == "DE"


@pytest.mark.parametrize(
    "e164, parts",
    [
        ("+15550102000", (1, "5550102000")),
        ("+390612345678", (39, "0612345678")),
        ("+4930123456", (49, "30123456")),
        ("+35312345678", (353, "12345678")),
        ("+999", None),
    ],
)
def test_split_e164_table(e164, parts):
    assert split_e164(e164) == parts


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+1 (555) 010-2000 ext. 42", ("+15550102000", "42")),
        ("tel:+1-555-010-2000;ext=7", ("+15550102000", "7")),
        ("555-0100", (None, None)),
        ("n/a", (None, None)),
        (
            "+1 212 555 0123 ext. 123456789012345678901234567890",
            ("+12125550123", "123456789012345678901234567890"),
        ),
        ("ext 42", (None, "42")),
    ],
)
def test_parse_number_table(raw, expected):
    assert parse_number(raw, "US") == expected


def test_digits_of_reads_unicode_digits():
    assert digits_of("\u0665\u0665\u0665-0100") == "5550100"


@pytest.mark.parametrize(
    "country_code, national, fits",
    [
        (1, "2125550123", True),
        (1, "5550102000", True),
        (1, "0897654321", False),
        (1, "0312345678", False),
        (49, "897654321", True),
        (39, "0612345678", True),
        (81, "312345678", True),
        (800, "12345678", True),
        (999, "123456", False),
    ],
)
def test_fits_numbering_plan_table(country_code, national, fits):
    assert fits_numbering_plan(country_code, national) is fits


@pytest.mark.parametrize(
    "raw, written",
    [
        ("+1 212 555 0123", "+1 212 555 0123"),
        (FULL_WIDTH_TOKYO, "03-1234-5678"),
        ("\uff0b\uff14\uff19 30 123", "+49 30 123"),
    ],
)
def test_normalize_written_table(raw, written):
    assert normalize_written(raw) == written


def test_max_internal_digits_matches_setting():
    largest = str(MAX_INTERNAL_DIGITS)
    assert plan(internal_digits=largest).internal_digits == MAX_INTERNAL_DIGITS
    with pytest.raises(ConfigError):
        plan(internal_digits=str(MAX_INTERNAL_DIGITS + 1))
