"""The dial plan: stored numbers to the digits the PBX expects."""

from __future__ import annotations

import pytest

from appliance.cisco.text import DIALABLE, TELEPHONE_MAX
from appliance.config import load_config
from appliance.directory.dialplan import DialPlan
from appliance.directory.numbers import digits_of, parse_number, split_e164


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


def test_dial_string_too_long_none():
    assert plan().dial_string("+1 555 010 2000", "+1" + "5" * 40) is None


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
    ],
)
def test_parse_number_table(raw, expected):
    assert parse_number(raw, "US") == expected


def test_digits_of_reads_unicode_digits():
    assert digits_of("\u0665\u0665\u0665-0100") == "5550100"
