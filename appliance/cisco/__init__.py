"""Cisco IP phone XML objects: pure renderers and the text and charset rules.

The package imports nothing of HTTP, SQLite or Google. Plain values go in and
encoded bytes come out, so every Cisco limit can be tested without a server.
"""

from appliance.cisco.charset import content_type, negotiate_charset
from appliance.cisco.objects import (
    DirectoryEntry,
    InputItem,
    MenuItem,
    SoftKey,
    render_directory,
    render_input,
    render_menu,
    render_text,
)
from appliance.cisco.text import LATIN1, UTF8

__all__ = [
    "LATIN1",
    "UTF8",
    "DirectoryEntry",
    "InputItem",
    "MenuItem",
    "SoftKey",
    "content_type",
    "negotiate_charset",
    "render_directory",
    "render_input",
    "render_menu",
    "render_text",
]
