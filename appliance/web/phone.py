"""Phone routes: the Cisco XML directory and the caller-ID lookup.

A phone starts at ``/directory`` (its directoryURL) and follows absolute links from
there, all built from ``appliance.base_url`` because a 7940 drops the port from
the Host header. Unknown query parameters, such as the ``locale`` and ``name``
every phone appends to its directoryURL, are ignored. Bad parameter values never
fail a request: a page that is not a number gives page 1, and over-long search
text is cut.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlencode

import bottle

from appliance.cisco import (
    DirectoryEntry,
    InputItem,
    MenuItem,
    SoftKey,
    content_type,
    negotiate_charset,
    render_directory,
    render_input,
    render_menu,
    render_text,
)
from appliance.cisco.objects import MAX_MENU_ITEMS
from appliance.cisco.text import URL_MAX, clean_text
from appliance.directory import Directory, Entry, paginate
from appliance.directory.index import BrowseGroup, DirectoryIndex, normalize_prefix
from appliance.errors import StoreError

if TYPE_CHECKING:
    from appliance.runtime import Appliance

logger = logging.getLogger(__name__)

# Search text longer than this is cut; a phone's input field is shorter anyway.
MAX_QUERY_CHARS = 40
MAX_PAGE_DIGITS = 6
# Page number used to check that the Next link of any page fits URL_MAX.
_WIDEST_PAGE = 10**MAX_PAGE_DIGITS - 1
# Set by the access middleware when the request carried a phone token; links
# carry it on, so the phone's next request is let in too.
ENVIRON_TOKEN = "appliance.phone_token"


@dataclass(frozen=True)
class SearchForm:
    """The texts and input mode of one kind of search."""

    menu_name: str
    title: str
    field: str
    flags: str  # InputFlags: A letters and digits, T telephone digits, N digits only
    result_title: str
    empty_prompt: str


SEARCHES = {
    "name": SearchForm(
        "Search by name", "Search by name", "Name", "A", "Name", "Enter part of a name"
    ),
    "number": SearchForm(
        "Search by number",
        "Search by number",
        "Number",
        "T",
        "Number",
        "Enter digits of a number",
    ),
    "keypad": SearchForm(
        "Keypad search (2=ABC)",
        "Keypad search",
        "Keys, 2=ABC \u2026 9=WXYZ",
        "N",
        "Keys",
        "Enter keys, such as 232",
    ),
}

EXIT = SoftKey("Exit", "SoftKey:Exit", 3)


class PhoneRequest:
    """What building one phone response needs: charset, links and timing."""

    def __init__(self, appliance: "Appliance") -> None:
        self.appliance = appliance
        headers = bottle.request.headers
        self.charset = negotiate_charset(
            headers.get("Accept-Charset"), headers.get("X-CiscoIPPhoneModelName")
        )
        self.ascii_only = appliance.config.directory.ascii_only
        self.token = bottle.request.environ.get(ENVIRON_TOKEN)
        self.timing = {"query_s": 0.0, "render_s": 0.0}
        bottle.request.environ["appliance.timing"] = self.timing

    def url(self, path: str, **params: str | int) -> str:
        """Return an absolute link on the public base URL, with the phone's token."""
        query = {"token": self.token} if self.token else {}
        query.update(
            (key, value) for key, value in params.items() if value not in ("", None)
        )
        link = self.appliance.base_url + path
        return f"{link}?{urlencode(query)}" if query else link

    def query(self, run: Callable):
        """Run a directory call and add its time to ``query_s``.

        A store that cannot be read gives 503, so the phone shows "not ready"
        rather than an internal error.
        """
        started = time.perf_counter()
        try:
            return run()
        except StoreError as error:
            logger.warning("directory unavailable", extra={"error": str(error)})
            raise bottle.HTTPError(
                503, "The directory is not ready. Try again in a moment."
            )
        finally:
            self.timing["query_s"] += time.perf_counter() - started

    def send(
        self, object_name: str, render: Callable[..., bytes], *args, **kwargs
    ) -> bytes:
        """Render a Cisco object in this request's charset and set its headers."""
        started = time.perf_counter()
        body = render(*args, charset=self.charset, ascii_only=self.ascii_only, **kwargs)
        self.timing["render_s"] += time.perf_counter() - started
        bottle.response.content_type = content_type(self.charset)
        self.appliance.events.emit("directory.page", object=object_name)
        return body


def query_text(name: str, limit: int = MAX_QUERY_CHARS) -> str | None:
    """Return a query parameter as text cut to ``limit``, or None when absent.

    Phones send UTF-8, or ISO-8859-1 on a Latin-1 locale; bytes that are not
    UTF-8 are read as ISO-8859-1.
    """
    value = bottle.request.query.get(name)
    if value is None:
        return None
    data = value.encode("latin-1", errors="replace")  # Bottle decodes as Latin-1
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return clean_text(text)[:limit]


def query_page() -> int:
    """Return the page parameter, or 1 when it is missing or not a whole number."""
    text = (bottle.request.query.get("page") or "").strip()[:MAX_PAGE_DIGITS]
    return int(text) if text.isdigit() else 1


def paging_softkeys(
    request: PhoneRequest, page, link: Callable[[int], str]
) -> list[SoftKey]:
    """Return Dial, EditDial and Exit, plus Next and Prev where there are pages.

    Custom softkeys replace the phone's defaults, so Dial, EditDial and Exit are
    added back; Next and Prev keep their positions on every page.
    """
    softkeys = [
        SoftKey("Dial", "SoftKey:Dial", 1),
        SoftKey("EditDial", "SoftKey:EditDial", 2),
        EXIT,
    ]
    if page.has_next:
        softkeys.append(SoftKey("Next", link(page.number + 1), 4))
    if page.has_previous:
        softkeys.append(SoftKey("Prev", link(page.number - 1), 5))
    return softkeys


def directory_entries(
    index: DirectoryIndex, positions: list[int]
) -> list[DirectoryEntry]:
    entries = [index.entries[position] for position in positions]
    return [
        DirectoryEntry(entry.name, entry.telephone, entry.label) for entry in entries
    ]


def page_prompt(page, counted: str) -> str:
    """Return the Prompt of a directory page, such as "87 entries, page 2/3"."""
    if counted == "entries" and page.total == 1:
        counted = "entry"
    if page.count > 1:
        return f"{page.total} {counted}, page {page.number}/{page.count}"
    return f"{page.total} {counted}"


class PhoneViews:
    """The route handlers; each builds a PhoneRequest and returns encoded XML."""

    def __init__(self, appliance: "Appliance") -> None:
        self.appliance = appliance

    @property
    def directory(self) -> Directory:
        return self.appliance.directory

    @property
    def page_size(self) -> int:
        return self.appliance.config.directory.page_size

    def menu(self) -> bytes:
        """Return the top menu: the three searches and browse A–Z."""
        request = PhoneRequest(self.appliance)
        items = [
            MenuItem(form.menu_name, request.url(f"/directory/search/{kind}"))
            for kind, form in SEARCHES.items()
        ]
        items.append(MenuItem("Browse A\u2013Z", request.url("/directory/browse")))
        return request.send(
            "CiscoIPPhoneMenu",
            render_menu,
            self.appliance.config.directory.title,
            items,
        )

    # -- browse ---------------------------------------------------------------

    def browse(self) -> bytes:
        """Return the letter menu, a group's subgroups, or a page of a group."""
        request = PhoneRequest(self.appliance)
        prefix = normalize_prefix(query_text("group") or "")
        index = request.query(self.directory.index)
        if not prefix:
            groups, positions = index.letter_groups(), []
        else:
            groups, positions = request.query(lambda: index.browse(prefix))
        if not groups and not positions:
            return self._empty_group(request, prefix)
        if groups:
            title = (
                f"Browse: {BrowseGroup(prefix, 0).title}"
                if prefix
                else "Browse A\u2013Z"
            )
            items = [
                MenuItem(
                    f"{group.title} ({group.count})",
                    request.url("/directory/browse", group=group.param),
                )
                for group in groups[:MAX_MENU_ITEMS]
            ]
            return request.send("CiscoIPPhoneMenu", render_menu, title, items)

        group = BrowseGroup(prefix, len(positions))
        return self._directory_page(
            request,
            index,
            positions,
            f"Browse: {group.title}",
            "entries",
            lambda number: request.url(
                "/directory/browse", group=group.param, page=number
            ),
        )

    def _directory_page(
        self,
        request: PhoneRequest,
        index: DirectoryIndex,
        positions: list[int],
        title: str,
        counted: str,
        link: Callable[[int], str],
    ) -> bytes:
        """Return the requested page of ``positions``; ``link`` makes page URLs."""
        page = paginate(positions, query_page(), self.page_size)
        self._expire_later_pages(page)
        return request.send(
            "CiscoIPPhoneDirectory",
            render_directory,
            title,
            directory_entries(index, page.items),
            prompt=page_prompt(page, counted),
            softkeys=paging_softkeys(request, page, link),
        )

    def _empty_group(self, request: PhoneRequest, prefix: str) -> bytes:
        if prefix:
            text = "No contact is filed here any more. Go back and choose again."
        else:
            text = "The directory has no contacts yet."
        return request.send(
            "CiscoIPPhoneText",
            render_text,
            "Browse A\u2013Z",
            text,
            softkeys=[
                SoftKey("Back", request.url("/directory/browse"), 1),
                SoftKey("Exit", "SoftKey:Exit", 2),
            ],
        )

    def _expire_later_pages(self, page) -> None:
        # A page the phone holds as expired is skipped by Exit, so Exit from page 3
        # returns to page 1 rather than walking back through every page.
        if page.number > 1:
            bottle.response.set_header("Expires", "-1")

    # -- search ---------------------------------------------------------------

    def search(self, kind: str) -> bytes:
        """Return the search form, or the results when the form sent ``q``."""
        request = PhoneRequest(self.appliance)
        text = query_text("q")
        if text is None:
            return self._form(request, kind)
        text = self._fit_query(request, kind, text.strip())
        if not text:
            return self._form(request, kind, prompt=SEARCHES[kind].empty_prompt)
        index, positions = request.query(lambda: self.directory.search(kind, text))
        if not positions:
            message = f'No contact matches "{text}".'
            softkeys = [
                SoftKey("Search", request.url(f"/directory/search/{kind}"), 1),
                SoftKey("Exit", "SoftKey:Exit", 2),
            ]
            return request.send(
                "CiscoIPPhoneText",
                render_text,
                SEARCHES[kind].title,
                message,
                softkeys=softkeys,
            )

        return self._directory_page(
            request,
            index,
            positions,
            f"{SEARCHES[kind].result_title}: {text}",
            "found",
            lambda number: self._results_url(request, kind, text, number),
        )

    def _form(
        self, request: PhoneRequest, kind: str, prompt: str | None = None
    ) -> bytes:
        form = SEARCHES[kind]
        return request.send(
            "CiscoIPPhoneInput",
            render_input,
            form.title,
            request.url(f"/directory/search/{kind}"),
            [InputItem(form.field, "q", form.flags)],
            prompt=prompt,
        )

    def _results_url(
        self, request: PhoneRequest, kind: str, text: str, page: int
    ) -> str:
        return request.url(f"/directory/search/{kind}", q=text, page=page)

    def _fit_query(self, request: PhoneRequest, kind: str, text: str) -> str:
        """Cut search text until its Next link fits URL_MAX on any page.

        The search runs on the cut text too, so every page of a result shows the
        same search.
        """
        while (
            text and len(self._results_url(request, kind, text, _WIDEST_PAGE)) > URL_MAX
        ):
            text = text[:-1].rstrip()
        return text

    # -- caller-ID lookup -----------------------------------------------------

    def lookup(self) -> bytes | str:
        """Return the name behind a calling number as text, JSON or a Cisco directory.

        No match gives an empty 200 text body, which PBX caller-name lookups treat
        as "no name".
        """
        number = query_text("number", limit=64)
        if number is None:
            raise bottle.HTTPError(
                400, "Missing parameter number: call /lookup?number=5550100."
            )
        request = PhoneRequest(self.appliance)
        entry = request.query(lambda: self.directory.lookup(number)) if number else None
        accept = bottle.request.headers.get("Accept", "")
        if "application/json" in accept:
            bottle.response.content_type = "application/json"
            return json.dumps(lookup_json(number, entry), ensure_ascii=False).encode(
                "utf-8"
            )
        if (
            bottle.request.headers.get("X-CiscoIPPhoneModelName")
            or "x-CiscoIPPhone" in accept
        ):
            return self._lookup_phone(request, number, entry)
        bottle.response.content_type = "text/plain; charset=utf-8"
        return (entry.name if entry else "").encode("utf-8")

    def _lookup_phone(
        self, request: PhoneRequest, number: str, entry: Entry | None
    ) -> bytes:
        if entry is None:
            return request.send(
                "CiscoIPPhoneText",
                render_text,
                "Caller",
                f"No contact has the number {number}.",
            )
        return request.send(
            "CiscoIPPhoneDirectory",
            render_directory,
            "Caller",
            [DirectoryEntry(entry.name, entry.telephone, entry.label)],
        )


def lookup_json(number: str, entry: Entry | None) -> dict:
    """Return the JSON body of a caller-ID lookup."""
    if entry is None:
        return {"ok": True, "number": number, "found": False, "name": None}
    return {
        "ok": True,
        "number": number,
        "found": True,
        "name": entry.name,
        "company": entry.contact.company or None,
        "label": entry.label or None,
        "telephone": entry.telephone,
    }


def register(app: bottle.Bottle, appliance: "Appliance") -> None:
    """Add the phone routes to ``app``."""
    views = PhoneViews(appliance)
    app.route("/directory", "GET", views.menu)
    app.route("/directory/", "GET", views.menu)
    app.route("/directory/browse", "GET", views.browse)
    app.route("/directory/search/<kind:re:name|number|keypad>", "GET", views.search)
    app.route("/lookup", "GET", views.lookup)
