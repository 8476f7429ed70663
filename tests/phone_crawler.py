"""A crawler that walks the directory the way a Cisco phone does.

From a start URL it follows every MenuItem, every softkey with an http URL, and
every CiscoIPPhoneInput form, which it submits by GET with search terms picked by
the form's InputFlags. Each response is checked as it arrives. It must have status
200, and a Content-Type and XML declaration that agree on the charset. Its bytes
must decode in that charset and form a document valid against CiscoIPPhone.xsd.
Its links must be absolute, on the expected base URL and within 256 characters,
and its Telephone values dialable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlencode

import requests

from appliance.cisco.text import DIALABLE
from cisco_schema import CiscoSchema

MAX_REQUESTS = 5000


@dataclass
class Visit:
    """One response the crawler fetched and checked."""

    url: str
    root: ET.Element
    body: bytes
    charset: str


@dataclass
class Shown:
    """One DirectoryEntry as the phone shows it, and the page it was on."""

    name: str
    telephone: str
    url: str


@dataclass
class Walk:
    """Everything one crawl saw."""

    visits: list[Visit] = field(default_factory=list)
    entries: list[Shown] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    forms: dict[str, str] = field(default_factory=dict)  # InputFlags -> form URL

    @property
    def telephones(self) -> set[str]:
        return {entry.telephone for entry in self.entries}


class PhoneCrawler:
    """Fetch and check pages as one phone model with its request headers."""

    def __init__(
        self,
        base_url: str,
        schema: CiscoSchema,
        headers: dict[str, str] | None = None,
        session: requests.Session | None = None,
        fetch_base: str | None = None,
    ) -> None:
        # Links must start with base_url; fetch_base replaces it when the test
        # server listens elsewhere (a public_base_url of another host).
        self.base_url = base_url
        self.fetch_base = fetch_base or base_url
        self.schema = schema
        self.headers = headers or {}
        self.session = session or requests.Session()

    # -- one page -------------------------------------------------------------

    def fetch(self, url: str, walk: Walk) -> Visit | None:
        """Fetch one URL and record every problem with the response."""
        if len(walk.visits) >= MAX_REQUESTS:
            walk.problems.append(f"more than {MAX_REQUESTS} requests; stopped at {url}")
            return None
        target = self.fetch_base + url[len(self.base_url) :]
        response = self.session.get(target, headers=self.headers, timeout=10)
        if response.status_code != 200:
            walk.problems.append(f"{url}: status {response.status_code}")
            return None
        charset = self._charset(url, response, walk)
        try:
            response.content.decode(charset)
        except (LookupError, UnicodeDecodeError) as error:
            walk.problems.append(f"{url}: body does not decode as {charset}: {error}")
            return None
        problems = self.schema.validate(response.content, strict_order=True)
        walk.problems += [f"{url}: {problem}" for problem in problems]
        if problems:
            return None
        visit = Visit(url, ET.fromstring(response.content), response.content, charset)
        walk.visits.append(visit)
        self._check_links(visit, walk)
        return visit

    def _charset(self, url: str, response: requests.Response, walk: Walk) -> str:
        content_type = response.headers.get("Content-Type", "")
        media_type, _, parameters = content_type.partition(";")
        header_charset = parameters.strip().removeprefix("charset=").lower()
        first_line = response.content.split(b"\n", 1)[0].decode("ascii", "replace")
        declared = first_line.partition('encoding="')[2].partition('"')[0].lower()
        if media_type.strip() != "text/xml":
            walk.problems.append(
                f"{url}: Content-Type {content_type!r} is not text/xml"
            )
        if not declared or declared != header_charset:
            walk.problems.append(
                f"{url}: XML declares {declared!r}, header says " f"{header_charset!r}"
            )
        return header_charset or "utf-8"

    def _check_links(self, visit: Visit, walk: Walk) -> None:
        for element in visit.root.iter("URL"):
            link = element.text or ""
            if link.startswith(("SoftKey:", "Dial:", "EditDial:")):
                continue
            if not link.startswith(self.base_url + "/"):
                walk.problems.append(
                    f"{visit.url}: link {link!r} is not on {self.base_url}"
                )
            if len(link) > 256:
                walk.problems.append(f"{visit.url}: link of {len(link)} characters")
        for telephone in visit.root.iter("Telephone"):
            if not set(telephone.text or "") <= DIALABLE:
                walk.problems.append(
                    f"{visit.url}: Telephone {telephone.text!r} not dialable"
                )

    # -- walking --------------------------------------------------------------

    def walk(self, start: str, search_terms: dict[str, list[str]]) -> Walk:
        """Follow everything reachable from ``start``; forms get ``search_terms``
        by InputFlags (A, T, N), and forms with flags not in the table are skipped."""
        walk = Walk()
        queue, seen = [start], {start}
        while queue:
            url = queue.pop(0)
            visit = self.fetch(url, walk)
            if visit is None:
                continue
            for link in self._links(visit, walk, search_terms):
                if link not in seen:
                    seen.add(link)
                    queue.append(link)
        return walk

    def _links(
        self, visit: Visit, walk: Walk, search_terms: dict[str, list[str]]
    ) -> list[str]:
        root = visit.root
        links = [item.findtext("URL") for item in root.iter("MenuItem")]
        links += [key.findtext("URL") for key in root.iter("SoftKeyItem")]
        if root.tag == "CiscoIPPhoneDirectory":
            walk.entries += [
                Shown(
                    entry.findtext("Name") or "",
                    entry.findtext("Telephone") or "",
                    visit.url,
                )
                for entry in root.iter("DirectoryEntry")
            ]
        if root.tag == "CiscoIPPhoneInput":
            links += self._submissions(root, walk, search_terms)
        return [link for link in links if link and link.startswith(self.base_url)]

    def _submissions(
        self, root: ET.Element, walk: Walk, search_terms: dict[str, list[str]]
    ) -> list[str]:
        form_url = root.findtext("URL")
        item = root.find("InputItem")
        flags = item.findtext("InputFlags")
        walk.forms.setdefault(flags, form_url)
        return [
            submit_url(form_url, item.findtext("QueryStringParam"), term)
            for term in search_terms.get(flags, [])
        ]

    def search(self, walk: Walk, flags: str, term: str) -> list[Shown]:
        """Submit the form with ``flags`` and return the entries of all result pages."""
        form_url = walk.forms[flags]
        url = submit_url(form_url, "q", term)
        found: list[Shown] = []
        for _ in range(1000):
            visit = self.fetch(url, walk)
            if visit is None or visit.root.tag != "CiscoIPPhoneDirectory":
                return found
            found += [
                Shown(
                    entry.findtext("Name") or "", entry.findtext("Telephone") or "", url
                )
                for entry in visit.root.iter("DirectoryEntry")
            ]
            url = softkey_url(visit.root, "Next")
            if url is None:
                return found
        raise AssertionError(f"search {term!r} pages without end")


def submit_url(form_url: str, param: str, value: str) -> str:
    """Return the URL a phone requests when it submits a form field."""
    separator = "&" if "?" in form_url else "?"
    return form_url + separator + urlencode({param: value})


def softkey_url(root: ET.Element, name: str) -> str | None:
    """Return the URL of the softkey called ``name``, or None when there is none."""
    for softkey in root.iter("SoftKeyItem"):
        if softkey.findtext("Name") == name:
            return softkey.findtext("URL")
    return None


def shows_name(shown: str, name: str) -> bool:
    """Tell whether a shown entry Name is ``name``, with or without a ``(label)``,
    or the start of it cut with an ellipsis."""
    if shown == name or shown.startswith(name + " ("):
        return True
    for ellipsis in ("\u2026", "..."):
        head, found, _ = shown.partition(ellipsis)
        if found and name.startswith(head.rstrip()):
            return True
    return False
