"""The dial plan: turn a stored number into the digits the PBX expects."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import phonenumbers

from appliance.cisco.text import TELEPHONE_MAX
from appliance.config import Config
from appliance.directory.numbers import (
    digits_of,
    fits_numbering_plan,
    normalize_written,
    parse_number,
    split_e164,
    split_extension,
    usual_international_prefix,
    usual_national_prefix,
)

# Separators people write inside numbers; an internal extension such as "4-021"
# or "*97" is dialled without them.
_SEPARATORS = re.compile(r"[\s\-./()\[\]]+")
_INTERNAL = re.compile(r"[0-9*#]+")
# Largest value of [dialplan] internal_digits.
MAX_INTERNAL_DIGITS = 8


@dataclass(frozen=True)
class DialPlan:
    """The rules of ``[dialplan]``, with the country's usual prefixes filled in."""

    home_country: str = "US"
    outside_line_prefix: str = ""
    international_prefix: str = "011"
    national_prefix: str = "1"
    extension: str = "pause"
    extension_pause_seconds: int = 2
    internal_digits: int = 0

    @classmethod
    def from_config(cls, config: Config) -> "DialPlan":
        """Build the dial plan of ``config``; ``auto`` and empty values take the
        home country's usual prefixes from libphonenumber's metadata."""
        section = config.dialplan
        home = section.home_country.upper()
        international = section.international_prefix or usual_international_prefix(home)
        national = section.national_prefix
        if national == "auto":
            national = usual_national_prefix(home)
        elif national == "none":
            national = ""
        return cls(
            home_country=home,
            outside_line_prefix=section.outside_line_prefix,
            international_prefix=international,
            national_prefix=national,
            extension=section.extension,
            extension_pause_seconds=section.extension_pause_seconds,
            internal_digits=section.internal_digits,
        )

    @cached_property
    def home_country_code(self) -> int:
        return phonenumbers.country_code_for_region(self.home_country)

    def dial_string(
        self, raw: str, e164: str | None = None, extension: str | None = None
    ) -> str | None:
        """Return what the phone dials for a number, or None when it has no digits.

        The result holds only ``0-9 * # ,`` and has at most 32 characters: an
        extension that would not fit is left off, and a number still too long
        gives None. ``e164`` and ``extension`` are the stored parsed forms; without
        them ``raw`` is parsed with the home country. Only a number that fits its
        country's numbering plan is rewritten with prefixes; any other is dialled
        with the digits as written.
        """
        raw = normalize_written(raw)
        internal = self._internal(raw)
        if internal is not None:
            return internal
        if e164 is None:
            e164, parsed_extension = parse_number(raw, self.home_country)
            extension = extension or parsed_extension
        main = self._main_number(raw, e164)
        if not main:
            return None
        main = self.outside_line_prefix + main
        if len(main) > TELEPHONE_MAX:
            return None
        extension_digits = digits_of(extension or "")
        if self.extension == "pause" and extension_digits:
            with_extension = (
                main + "," * self.extension_pause_seconds + extension_digits
            )
            if len(with_extension) <= TELEPHONE_MAX:
                return with_extension
        return main

    def explain_undialable(self, raw: str) -> str:
        """Say why ``dial_string`` gives None for a number with digits, and what to do."""
        number, extension = split_extension(normalize_written(raw))
        if extension is None or digits_of(number):
            return f"has more digits than a phone dials ({TELEPHONE_MAX} at most)"
        if len(extension) > MAX_INTERNAL_DIGITS:
            return (f"is an extension with no number before it, longer than the "
                    f"{MAX_INTERNAL_DIGITS} digits [dialplan] internal_digits allows")
        return (f"is an extension with no number before it: set [dialplan] "
                f"internal_digits to {len(extension)} or more to dial it as an internal "
                "extension, then import again")

    def _internal(self, raw: str) -> str | None:
        """Return an internal number as written, or None for an outside number.

        Internal numbers are feature codes that start with * or # (such as *97 for
        voicemail) and, when ``internal_digits`` is set, numbers that short. An
        extension written with no number before it ("ext 42") is internal too when
        it is that short.
        """
        compact = _SEPARATORS.sub("", raw or "")
        number, extension = split_extension(raw or "")
        if extension is not None and not _SEPARATORS.sub("", number):
            compact = extension
        if not _INTERNAL.fullmatch(compact) or len(compact) > TELEPHONE_MAX:
            return None
        if compact[0] in "*#":
            return compact
        if len(compact) <= self.internal_digits:
            return compact
        return None

    def _main_number(self, raw: str, e164: str | None) -> str:
        """Return the number without outside-line prefix or extension."""
        parts = split_e164(e164) if e164 else None
        if parts is None or not fits_numbering_plan(*parts):
            # Not understood: a local number without its area code, a number outside
            # its country's numbering plan, or junk around digits. The digits are
            # dialled as written, with the international prefix for a "+".
            written = split_extension((raw or "").split(";")[0])[0]
            digits = digits_of(written)
            if digits and written.lstrip().startswith("+"):
                return self.international_prefix + digits
            return digits
        country_code, national_number = parts
        if country_code == self.home_country_code:
            return self.national_prefix + national_number
        return f"{self.international_prefix}{country_code}{national_number}"
