"""The benchmark scripts' helpers: generated data, the ceiling page, report parsing."""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET

import pytest

from appliance.sources.files import read_contact_file
from bench.common import (
    Finished,
    generate_contacts,
    keypad_digits,
    write_contacts_csv,
    write_contacts_vcard,
)
from bench.servers import CEILING_PAGE_BYTES, ceiling_page
from bench.serving import add_load_options, parse_load_options
from bench.sync import parse_report


def test_ceiling_page_is_exactly_3_kb():
    assert len(ceiling_page()) == CEILING_PAGE_BYTES


def test_ceiling_page_is_cisco_directory():
    root = ET.fromstring(ceiling_page())
    assert root.tag == "CiscoIPPhoneDirectory"
    assert len(root.findall("DirectoryEntry")) == 28


def test_generate_contacts_repeats_for_seed():
    assert generate_contacts(50, seed=3) == generate_contacts(50, seed=3)


@pytest.mark.parametrize("writer, name", [(write_contacts_csv, "contacts.csv"),
                                          (write_contacts_vcard, "contacts.vcf")])
def test_generated_file_imports_every_contact(tmp_path, make_config, writer, name):
    contacts = generate_contacts(200)
    writer(tmp_path / name, contacts)
    result = read_contact_file(tmp_path / name, make_config())
    assert len(result.contacts) == 200
    assert sum(len(contact.numbers) for contact in result.contacts) == sum(
        len(contact.numbers) for contact in contacts)


@pytest.mark.parametrize("text, digits", [("Ada", "232"), ("Lovelace", "56835223"),
                                          ("Müller", "65537"), ("", "")])
def test_keypad_digits_spell_letters(text, digits):
    assert keypad_digits(text) == digits


def test_sync_report_parses_counts():
    finished = Finished(0, 5.0, 0, "Full sync ok in 5.4 s: 25000 added, 3 changed, "
                        "2 removed\nAdded (25000):\n", "")
    assert parse_report(finished) == ("full", "ok", 5.4, 25000, 3, 2)


def test_sync_report_missing_raises():
    with pytest.raises(RuntimeError, match="no report"):
        parse_report(Finished(1, 0.5, 0, "", "error: Google is not set up"))


@pytest.mark.parametrize("argv, message", [
    (["--kinds", "browse,menu"], "menu"),
    (["--watching", "maybe"], "maybe"),
    (["--contacts", "ten"], "ten"),
])
def test_load_options_reject_bad_value(argv, message, capsys):
    parser = argparse.ArgumentParser()
    add_load_options(parser)
    with pytest.raises(SystemExit):
        parse_load_options(parser, argv)
    assert message in capsys.readouterr().err
