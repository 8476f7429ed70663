"""The bundled fictional contacts that make the directory work before any import."""

from __future__ import annotations

from appliance.config import Config
from appliance.model import Contact, PhoneNumber


def load_sample_contacts(config: Config) -> list[Contact]:
    # Placeholder until the sample file and the CSV reader exist.
    return [Contact("sample", "1", given_name="Ada", family_name="Lovelace",
                    numbers=[PhoneNumber("+1 555 0100", "work", True)])]
