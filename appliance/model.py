"""Plain records that sources produce and the store keeps."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass
class PhoneNumber:
    """One number of a contact, as written in the source, with its parsed forms."""

    raw: str
    type_label: str = ""
    is_primary: bool = False
    e164: str | None = None
    extension: str | None = None


@dataclass
class Contact:
    """One directory entry before it is split into one row per dialable number.

    ``source`` names where it came from (``sample``, ``import``, ``google``,
    ``google-other``, ``google-directory``); ``source_id`` is unique within that
    source; ``origin`` tells an admin where to look (a file and line, a resource name).
    """

    source: str
    source_id: str
    given_name: str = ""
    family_name: str = ""
    middle_name: str = ""
    display_name: str = ""
    nickname: str = ""
    company: str = ""
    job_title: str = ""
    labels: list[str] = field(default_factory=list)
    numbers: list[PhoneNumber] = field(default_factory=list)
    origin: str = ""
    etag: str = ""
    id: int | None = None

    def fingerprint(self) -> str:
        """Return a digest of the shown fields, used to tell updated contacts apart."""
        data = asdict(self)
        for key in ("id", "origin", "etag", "source_id"):
            data.pop(key)
        encoded = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(encoded).hexdigest()[:32]
