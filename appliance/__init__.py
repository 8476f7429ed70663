"""Phonebook Appliance: Google Contacts served to Cisco IP phones as XML directories."""

__all__ = ["__version__"]

__version__ = "0.1.0"
