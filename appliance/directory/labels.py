"""Labels offered as directories of their own: their ids, names and entries.

A label is a Google label (contact group), or a group that an imported file gave a
contact (the CSV ``Labels`` or ``Group Membership`` column, vCard CATEGORIES).
Labels compare without regard to case or repeated spaces, so "Staff" from Google
and "staff" from a file are one label.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from appliance.directory.naming import fold

# Hex digits of a label id. A phone's URL carries the id instead of the name, so a
# long or accented name cannot push a link past Cisco's 256 characters.
LABEL_ID_CHARS = 8


@dataclass(frozen=True, eq=False)
class Label:
    """A label with at least one dialable entry.

    ``id`` is a digest of the label's compared form, so it stays the same across
    index rebuilds and a phone paging through a label keeps its place after a sync.
    ``positions`` are the label's entry positions in directory order.
    """

    id: str
    key: str
    name: str
    positions: list[int]
    members: frozenset[int]

    @property
    def count(self) -> int:
        return len(self.positions)

    def select(self, positions: Iterable[int]) -> list[int]:
        """Return the positions that belong to this label, in the order given."""
        members = self.members
        return [position for position in positions if position in members]


def label_key(name: str) -> str:
    """Return the form labels compare in: spaces collapsed, case folded."""
    return " ".join(name.split()).casefold()


def build_labels(
    entry_labels: Iterable[Iterable[str]], only: Iterable[str] = ()
) -> list[Label]:
    """Return the labels of the entries, sorted by name as the directory sorts.

    ``entry_labels`` gives the label names of each entry's contact, in entry
    order. With ``only``, labels outside it are left out.
    """
    wanted = {label_key(name) for name in only} - {""}
    positions: dict[str, list[int]] = defaultdict(list)
    spellings: dict[str, set[str]] = defaultdict(set)
    for position, names in enumerate(entry_labels):
        for name in names:
            key = label_key(name)
            if not key or (wanted and key not in wanted):
                continue
            found = positions[key]
            # A contact that lists one label twice (Staff and staff) counts once.
            if not found or found[-1] != position:
                found.append(position)
            spellings[key].add(" ".join(name.split()))

    ids = label_ids(list(positions))
    labels = [
        # Of several spellings, the one that sorts first is shown, so the
        # choice does not depend on the order contacts were read in.
        Label(ids[key], key, min(spellings[key]), found, frozenset(found))
        for key, found in positions.items()
    ]
    labels.sort(key=lambda label: (fold(label.name), label.name))
    return labels


def missing_labels(only: Iterable[str], labels: Iterable[Label]) -> list[str]:
    """Return the names in ``only`` that match none of ``labels``."""
    present = {label.key for label in labels}
    return [name for name in only if label_key(name) not in present]


def label_ids(keys: list[str], size: int = LABEL_ID_CHARS) -> dict[str, str]:
    """Return an id for each key: the first ``size`` hex digits of its SHA-256 digest.

    When two keys share a prefix, every id gets four digits longer until all
    differ. With eight digits (32 bits) the chance of a shared prefix reaches 1 %
    at about 9,000 labels.
    """
    digests = {key: hashlib.sha256(key.encode("utf-8")).hexdigest() for key in keys}
    while len({digest[:size] for digest in digests.values()}) < len(digests):
        size += 4
    return {key: digest[:size] for key, digest in digests.items()}
