"""Records that the file parsers produce, and the label rules they share."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from appliance.errors import ImportFileError
from appliance.model import Contact

# Number types that Google Contacts, phones and Outlook write with varying case
# ("Mobile", "MOBILE", "mobile"). They are stored in lowercase so the directory
# shows one spelling; any other text is a custom label and is kept as written.
STANDARD_TYPE_LABELS = frozenset({
    "mobile", "work", "home", "main", "other", "pager", "fax", "home fax", "work fax",
    "other fax", "work mobile", "work pager", "google voice", "car", "assistant",
    "callback", "company main", "isdn", "radio", "telex", "tty/tdd",
})

# Google's own contact groups, which are not kept as labels: every contact is in
# myContacts, and starred only marks favourites. Google CSV writes them with a
# leading "* " ("* myContacts"), and Google's vCard export writes the bare name.
SYSTEM_GROUPS = frozenset({"mycontacts", "starred"})


@dataclass
class ParsedEntry:
    """One CSV row or vCard card as read from the file.

    ``contact`` has its names, labels and raw numbers; its ``source``,
    ``source_id`` and parsed number forms are filled in later. When the entry
    cannot be used, ``contact`` is None and ``problem`` gives the reason.
    """

    line: int
    card: int | None
    contact: Contact | None
    problem: str = ""

    @property
    def location(self) -> str:
        """Return where the entry starts, such as ``line 12`` or ``card 3 (line 40)``."""
        if self.card is None:
            return f"line {self.line}"
        return f"card {self.card} (line {self.line})"


def normalize_type_label(text: str) -> str:
    """Return a number type in its stored spelling: standard types in lowercase."""
    label = " ".join(text.split())
    if label.casefold() in STANDARD_TYPE_LABELS:
        return label.casefold()
    return label


def is_system_group(label: str) -> bool:
    """Tell whether a label is one of Google's own groups rather than the user's."""
    return label.startswith("* ") or label.casefold() in SYSTEM_GROUPS


def clean_text(text: str) -> str:
    """Return ``text`` with line breaks, tabs and repeated spaces made single spaces."""
    return " ".join(text.split())


def check_line(number: int, raw: bytes) -> bytes:
    """Return one file line without the UTF-8 byte order mark that may start line 1.

    Raises ImportFileError when the line contains a NUL byte, which text never does.
    """
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if b"\x00" in raw:
        raise ImportFileError(
            f"line {number} contains a NUL byte, so the file is binary or UTF-16 rather than "
            "UTF-8 text. Export the contacts again as Google CSV or vCard.")
    return raw
