"""An immutable in-memory index of the directory: entries, browse groups, search keys.

One entry is one dialable number of one contact. Entries are sorted once, so browse
groups are ranges of the entry list, and every search returns entry positions in
that order. Prefix searches use bisection over sorted keys, so a search costs a few
lookups plus the size of its result, not a scan of every contact. A label offered
as its own directory keeps its entry positions and their sort texts, so browsing
it bisects the same way and a search in it filters one result list.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from appliance.directory.dialplan import DialPlan
from appliance.directory.labels import Label, build_labels
from appliance.directory.naming import (
    contact_name,
    fold,
    keypad_digits,
    number_labels,
    query_words,
    search_words,
    sort_text,
)
from appliance.directory.numbers import digits_of, parse_number
from appliance.model import Contact, PhoneNumber

OTHER_GROUP = "#"
# A browse group with more entries than this (five pages of 32) is split into
# groups by the next letter, so a user does not page through hundreds of Smiths.
BROWSE_SPLIT_ABOVE = 160
# Maximum length of a browse prefix. A group at this length is paged whatever its size.
BROWSE_MAX_PREFIX = 12
# Number search matches trailing digits from this many digits on. Shorter input
# must match a whole number, so "42" finds extension 42 and not every number
# that ends in 42.
SEARCH_MIN_SUFFIX_DIGITS = 3
# Caller-ID lookup trusts trailing digits only this long, and only when they
# point at a single contact.
LOOKUP_MIN_SUFFIX_DIGITS = 7
# Past this key any folded word sorts: folded words are lowercase ASCII.
_AFTER_ASCII = "\x7f"
_RESULT_CACHE_SIZE = 256
_NOT_PREFIX = re.compile(r"[^0-9a-z ]+")
_SPACES = re.compile(r" {2,}")


@dataclass(frozen=True)
class Entry:
    """One dialable number of one contact, as one line of a directory page."""

    contact: Contact
    number: PhoneNumber
    name: str
    label: str
    telephone: str
    sort_text: str
    group: str


@dataclass(frozen=True)
class BrowseGroup:
    """A browse group: the folded prefix its entries sort under, and their count."""

    prefix: str
    count: int

    @property
    def title(self) -> str:
        """Return the prefix as a phone shows it: A, Sm, or # for the rest."""
        if self.prefix == OTHER_GROUP:
            return OTHER_GROUP
        return self.prefix.strip().title() or self.prefix

    @property
    def param(self) -> str:
        """Return the prefix as a URL parameter, spaces written as underscores.

        A prefix such as "li " (family name Li) must keep its trailing space, which
        query-string cleaning would strip.
        """
        return self.prefix.replace(" ", "_")


@dataclass(frozen=True)
class _Listing:
    """Entries as browsing reads them: all of them, or one label's.

    ``sort_texts[i]`` is the sort text of entry ``positions[i]``, and the # group
    starts at ``other_start``.
    """

    positions: Sequence[int]
    sort_texts: list[str]
    other_start: int


def group_of(text: str) -> str:
    """Return the browse letter of a folded sort text: a to z, or # for the rest."""
    first = text[:1]
    return first if "a" <= first <= "z" else OTHER_GROUP


class DirectoryIndex:
    """Everything a phone request reads, built once from a list of contacts."""

    def __init__(
        self,
        contacts: Iterable[Contact],
        dial_plan: DialPlan,
        name_format: str = "given_family",
        sort: str = "family",
        previous_dial_cache: dict | None = None,
        with_labels: bool = False,
        only_labels: Iterable[str] = (),
    ) -> None:
        """Index ``contacts``; ``with_labels`` also indexes each label as a directory
        of its own, and ``only_labels`` (when not empty) limits that to those names."""
        self.dial_plan = dial_plan
        # Dial strings by (raw, e164, extension). The previous index's cache is read
        # too, because numbers rarely change between two syncs.
        self.dial_cache: dict = {}
        self._previous_dial_cache = previous_dial_cache or {}
        self._results: dict[tuple[str, str, str], list[int]] = {}
        self._results_lock = threading.Lock()

        contacts = list(contacts)
        self.contact_count = len(contacts)
        self.entries = self._build_entries(contacts, name_format, sort)
        self._sort_texts = [entry.sort_text for entry in self.entries]
        # Entries of the # group come last; letter groups are ranges before it.
        self._other_start = next(
            (
                position
                for position, entry in enumerate(self.entries)
                if entry.group == OTHER_GROUP
            ),
            len(self.entries),
        )
        self._all = _Listing(
            range(len(self.entries)), self._sort_texts, self._other_start
        )
        self._build_search_keys()
        self._build_number_keys()

        self.labels: list[Label] = []
        self._labels_by_id: dict[str, Label] = {}
        self._label_listings: dict[str, _Listing] = {}
        if with_labels:
            self._build_labels(only_labels)

    # -- building -------------------------------------------------------------

    def _build_entries(
        self, contacts: list[Contact], name_format: str, sort: str
    ) -> list[Entry]:
        entries = []
        for contact in contacts:
            name = contact_name(contact, name_format)
            text = sort_text(contact, name, sort)
            numbers = sorted(contact.numbers, key=lambda number: not number.is_primary)
            dialled: dict[str, PhoneNumber] = {}
            for number in numbers:
                telephone = self._dial(number.raw, number.e164, number.extension)
                if telephone and telephone not in dialled:
                    dialled[telephone] = number
            labels = number_labels([number.type_label for number in dialled.values()])
            for (telephone, number), label in zip(dialled.items(), labels):
                entries.append(
                    Entry(
                        contact=contact,
                        number=number,
                        name=name,
                        label=label,
                        telephone=telephone,
                        sort_text=text,
                        group=group_of(text),
                    )
                )
        # Letters first, then everything else; within a group by sort text. The sort
        # is stable, so a contact's numbers keep their order, primary first.
        entries.sort(
            key=lambda entry: (entry.group == OTHER_GROUP, entry.sort_text, entry.name)
        )
        return entries

    def _dial(self, raw: str, e164: str | None, extension: str | None) -> str | None:
        key = (raw, e164, extension)
        if key not in self.dial_cache:
            if key in self._previous_dial_cache:
                self.dial_cache[key] = self._previous_dial_cache[key]
            else:
                self.dial_cache[key] = self.dial_plan.dial_string(raw, e164, extension)
        return self.dial_cache[key]

    def _build_search_keys(self) -> None:
        """Map every folded word and its keypad digits to the entries it finds."""
        by_word: dict[str, list[int]] = defaultdict(list)
        words_by_contact: dict[int, set[str]] = {}
        for position, entry in enumerate(self.entries):
            words = words_by_contact.get(id(entry.contact))
            if words is None:
                words = search_words(entry.contact)
                words_by_contact[id(entry.contact)] = words
            for word in words:
                by_word[word].append(position)
        by_keys: dict[str, list[int]] = defaultdict(list)
        for word, positions in by_word.items():
            by_keys[keypad_digits(word)].extend(positions)
        self._words = sorted(by_word)
        self._word_entries = [by_word[word] for word in self._words]
        self._keys = sorted(key for key in by_keys if key)
        self._key_entries = [by_keys[key] for key in self._keys]

    def _build_number_keys(self) -> None:
        """Map each number's E.164 form, digits and reversed digits to its entries."""
        self._by_e164: dict[str, list[int]] = defaultdict(list)
        self._by_digits: dict[str, list[int]] = defaultdict(list)
        reversed_digits: dict[str, list[int]] = defaultdict(list)
        for position, entry in enumerate(self.entries):
            number = entry.number
            e164 = number.e164 or self._parse(number.raw)
            forms = {
                digits_of(number.raw.split(";")[0]),
                digits_of(entry.telephone.split(",")[0]),
            }
            if e164:
                self._by_e164[e164].append(position)
                forms.add(e164[1:])
            for digits in forms:
                if digits:
                    self._by_digits[digits].append(position)
                    reversed_digits[digits[::-1]].append(position)
        self._reversed = sorted(reversed_digits)
        self._reversed_entries = [reversed_digits[key] for key in self._reversed]

    def _parse(self, raw: str) -> str | None:
        """Return the E.164 form of a number stored without one, if it parses now."""
        return parse_number(raw, self.dial_plan.home_country)[0]

    def _build_labels(self, only: Iterable[str]) -> None:
        """Find each label's entries and keep them as a listing to browse."""
        self.labels = build_labels(
            (entry.contact.labels for entry in self.entries), only
        )
        self._labels_by_id = {label.id: label for label in self.labels}
        for label in self.labels:
            # Positions ascend and the # group comes last, so the label's # group
            # starts at its first position past the letters.
            self._label_listings[label.id] = _Listing(
                label.positions,
                [self._sort_texts[position] for position in label.positions],
                bisect.bisect_left(label.positions, self._other_start),
            )

    def get_label(self, label_id: str) -> Label | None:
        """Return the label with this id, or None when no indexed label has it."""
        return self._labels_by_id.get(label_id)

    # -- browsing -------------------------------------------------------------

    def _listing(self, label: Label | None) -> _Listing:
        return self._all if label is None else self._label_listings[label.id]

    def _range(self, listing: _Listing, prefix: str) -> tuple[int, int]:
        """Return the slice of ``listing`` whose sort texts start with ``prefix``."""
        texts, other_start = listing.sort_texts, listing.other_start
        if prefix == OTHER_GROUP:
            return other_start, len(texts)
        # A text equal to the prefix without its trailing space ("li" for "li ")
        # belongs to the group too: it sorts just before the texts that go on.
        start = bisect.bisect_left(texts, prefix.rstrip(" "), 0, other_start)
        end = bisect.bisect_left(texts, prefix + _AFTER_ASCII, start, other_start)
        return start, end

    def letter_groups(self, label: Label | None = None) -> list[BrowseGroup]:
        """Return the non-empty groups A to Z, then # for names that start otherwise.

        With ``label``, only that label's entries count.
        """
        listing = self._listing(label)
        groups = self._groups_by_prefix(listing, 0, 0, listing.other_start)
        others = len(listing.sort_texts) - listing.other_start
        if others:
            groups.append(BrowseGroup(OTHER_GROUP, others))
        return groups

    def browse(
        self, prefix: str, label: Label | None = None
    ) -> tuple[list[BrowseGroup], list[int]]:
        """Return either the subgroups of a browse group or its entry positions.

        A group of at most BROWSE_SPLIT_ABOVE entries returns its entries. A larger
        one returns groups by the next character, skipping levels with a single
        subgroup; the # group and groups at BROWSE_MAX_PREFIX are never split.
        With ``label``, only that label's entries count.
        """
        listing = self._listing(label)
        prefix = normalize_prefix(prefix)
        start, end = self._range(listing, prefix)
        while (
            end - start > BROWSE_SPLIT_ABOVE
            and prefix != OTHER_GROUP
            and len(prefix) < BROWSE_MAX_PREFIX
        ):
            subgroups = self._groups_by_prefix(listing, len(prefix), start, end)
            if len(subgroups) > 1:
                return subgroups, []
            prefix = subgroups[0].prefix
        return [], list(listing.positions[start:end])

    def _groups_by_prefix(
        self, listing: _Listing, size: int, start: int, end: int
    ) -> list[BrowseGroup]:
        """Return the groups of ``listing`` from start to end by their first
        ``size`` + 1 characters. Each group is found by bisection, so the cost grows
        with the number of groups, not of entries."""
        texts = listing.sort_texts
        groups = []
        position = start
        while position < end:
            # A text as long as the prefix joins the group of the prefix plus a
            # space: "li" (family name only) files with "li wei".
            key = texts[position][: size + 1].ljust(size + 1)
            following = bisect.bisect_left(texts, key + _AFTER_ASCII, position, end)
            groups.append(BrowseGroup(key, following - position))
            position = following
        return groups

    # -- searching ------------------------------------------------------------

    def _cached(
        self,
        kind: str,
        query: str,
        search: Callable[[str], list[int]],
        label: Label | None = None,
    ) -> list[int]:
        """Return a search result from the cache, or run and remember it.

        A label's result is the whole directory's result filtered by the label,
        so a search in a label costs one pass over that result.
        """
        key = (kind, query, label.id if label else "")
        result = self._results.get(key)
        if result is None:
            if label is None:
                result = search(query)
            else:
                result = label.select(self._cached(kind, query, search))
            # Waitress threads share the cache, so eviction and insertion happen
            # under a lock: two threads evicting the same oldest key would raise.
            with self._results_lock:
                while len(self._results) >= _RESULT_CACHE_SIZE:
                    self._results.pop(next(iter(self._results)))
                self._results[key] = result
        return result

    def search_name(self, query: str, label: Label | None = None) -> list[int]:
        """Return entries of contacts that have a word starting with each query word.

        Matching ignores case and accents and covers given, middle, family, display
        and company names and nicknames. With ``label``, only that label's entries
        are returned, as in every search below.
        """
        tokens = query_words(query)
        return self._cached(
            "name",
            " ".join(tokens),
            lambda _: _intersect(self._words, self._word_entries, tokens),
            label,
        )

    def search_keypad(self, query: str, label: Label | None = None) -> list[int]:
        """Return entries whose words start with the letters keypad digits spell.

        2 is ABC through 9 WXYZ. 0, 1, * and # separate words, so 232 0 568 finds
        Ada Lovelace.
        """
        digits = "".join(
            character if character in "23456789" else " "
            for character in digits_of_keypad(query)
        )
        tokens = digits.split()
        return self._cached(
            "keypad",
            " ".join(tokens),
            lambda _: _intersect(self._keys, self._key_entries, tokens),
            label,
        )

    def search_number(self, query: str, label: Label | None = None) -> list[int]:
        """Return entries whose number matches the query in any written form.

        The query may be international (+1 555 010 2000, 011 44 …), national,
        plain digits, or trailing digits of at least SEARCH_MIN_SUFFIX_DIGITS.
        """
        return self._cached("number", query.strip(), self._match_number, label)

    def _match_number(self, query: str) -> list[int]:
        found = set(self._exact_number(query))
        digits = digits_of(query)
        for suffix in {digits, digits.lstrip("0")}:
            if len(suffix) >= SEARCH_MIN_SUFFIX_DIGITS:
                found.update(self._suffix(suffix))
        return sorted(found)

    def _exact_number(self, query: str) -> list[int]:
        """Return entries whose E.164 form or whole digits equal the query's."""
        found: set[int] = set()
        for variant in self._number_variants(query):
            e164, _ = parse_number(variant, self.dial_plan.home_country)
            if e164:
                found.update(self._by_e164.get(e164, ()))
            found.update(self._by_digits.get(digits_of(variant), ()))
        return sorted(found)

    def _number_variants(self, query: str) -> list[str]:
        """Return the query, and without the outside-line prefix when it has one."""
        variants = [query]
        prefix = self.dial_plan.outside_line_prefix
        compact = digits_of(query)
        if (
            prefix
            and prefix.isdigit()
            and compact.startswith(prefix)
            and len(compact) > len(prefix)
        ):
            variants.append(compact[len(prefix) :])
        return variants

    def _suffix(self, digits: str) -> set[int]:
        key = digits[::-1]
        start = bisect.bisect_left(self._reversed, key)
        end = bisect.bisect_left(self._reversed, key + _AFTER_ASCII, start)
        found: set[int] = set()
        for positions in self._reversed_entries[start:end]:
            found.update(positions)
        return found

    def lookup(self, number: str) -> Entry | None:
        """Return the entry a calling number belongs to, or None.

        Caller ID must not name the wrong person, so trailing digits count only
        when there are at least LOOKUP_MIN_SUFFIX_DIGITS and they all belong to
        one contact.
        """
        exact = self._exact_number(number)
        if exact:
            return self.entries[exact[0]]
        digits = digits_of(number)
        for suffix in (digits, digits.lstrip("0")):
            if len(suffix) < LOOKUP_MIN_SUFFIX_DIGITS:
                continue
            found = sorted(self._suffix(suffix))
            contacts = {id(self.entries[position].contact) for position in found}
            if len(contacts) == 1:
                return self.entries[found[0]]
        return None


def digits_of_keypad(text: str) -> str:
    """Return the keypad characters of ``text``: digits, * and #."""
    return "".join(character for character in text if character in "0123456789*#")


def normalize_prefix(param: str) -> str:
    """Return the browse prefix of a group parameter, or # for the other group.

    Sort texts hold only a-z, 0-9 and single spaces, so anything else is dropped.
    Underscores stand for spaces (see BrowseGroup.param).
    """
    if param.strip() == OTHER_GROUP:
        return OTHER_GROUP
    folded = _NOT_PREFIX.sub("", fold(param.replace("_", " ")))
    return _SPACES.sub(" ", folded).lstrip()[:BROWSE_MAX_PREFIX]


def _intersect(
    keys: list[str], values: list[list[int]], tokens: list[str]
) -> list[int]:
    """Return positions found for every token, each token matching as a key prefix."""
    if not tokens:
        return []
    result: set[int] | None = None
    # The longest token usually matches fewest keys, so it goes first.
    for token in sorted(tokens, key=len, reverse=True):
        start = bisect.bisect_left(keys, token)
        end = bisect.bisect_left(keys, token + _AFTER_ASCII, start)
        matched: set[int] = set()
        for positions in values[start:end]:
            matched.update(positions)
        result = matched if result is None else result & matched
        if not result:
            return []
    return sorted(result)
