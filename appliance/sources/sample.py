"""The bundled fictional contacts that make the directory work before any import.

They ship as a Google Contacts CSV export and go through the same reader as an
imported file, so the samples also exercise the import path. The numbers are in
ranges kept for fiction: 555-0100 to 555-0199 in North America, 020 7946 0xxx
and 07700 900xxx in the UK.
"""

from __future__ import annotations

from importlib import resources

from appliance.config import Config
from appliance.errors import ImportFileError
from appliance.model import Contact
from appliance.sources.files import read_contact_file

SAMPLE_SOURCE = "sample"
SAMPLE_FILE = "sample-contacts.csv"


def load_sample_contacts(config: Config) -> list[Contact]:
    """Read the bundled sample contacts, with numbers parsed per ``[dialplan]``.

    Raises ImportFileError when the bundled file is missing from the installation
    or any of its rows is skipped, because either means a broken build.
    """
    with resources.as_file(resources.files("appliance") / "data" / SAMPLE_FILE) as path:
        result = read_contact_file(path, config, source=SAMPLE_SOURCE)
    if result.skipped:
        raise ImportFileError(
            f"The bundled sample file {SAMPLE_FILE} has {len(result.skipped)} unusable rows, "
            f"first {result.skipped[0]}. Reinstall the appliance.")
    return result.contacts
