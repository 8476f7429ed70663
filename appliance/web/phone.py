"""Phone routes: the Cisco XML directory and the caller-ID lookup.

A phone starts at ``/directory`` (its directoryURL) and follows absolute links from
there, all built from ``appliance.base_url`` because a 7940 drops the port from
the Host header. With ``[directory] label_menus`` on, each label is a directory of
its own under ``/directory/labels/<label id>``, with the same browse and search
pages as the whole directory.

Unknown query parameters, such as the ``locale`` and ``name`` every phone appends
to its directoryURL, are ignored. Bad parameter values never fail a request: a
page that is not a number gives page 1, and over-long search text is cut.
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
from appliance.cisco.text import TITLE_MAX, URL_MAX, clean_text, fit, transliterate
from appliance.directory import Directory, Entry, Label, paginate
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
LABELS_PATH = "/directory/labels"
# A page of the Groups menu contains as many labels as a Cisco menu accepts.
LABELS_PER_PAGE = MAX_MENU_ITEMS
# Singular of the words page prompts count in.
SINGULAR = {"entries": "entry", "groups": "group"}


@dataclass(frozen=True)
class Scope:
    """The directory a page belongs to: the whole one, or one label's.

    ``path`` is where its menu is; browse and search pages are below it.
    """

    path: str
    label: Label | None = None

    @classmethod
    def of_label(cls, label: Label) -> "Scope":
        return cls(f"{LABELS_PATH}/{label.id}", label)


WHOLE_DIRECTORY = Scope("/directory")


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
    """Context for building one phone response: charset, links and timing."""

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

    def title(self, head: str, tail: str) -> str:
        """Return "head: tail" within TITLE_MAX as this phone shows it, cutting
        ``head`` so that ``tail`` stays whole."""
        spelt = transliterate(clean_text(head), self.charset, self.ascii_only)
        room = TITLE_MAX - len(tail) - 2
        return f"{fit(spelt, room, self.charset)}: {tail}"

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


def count_text(total: int, counted: str) -> str:
    """Return a count such as "87 entries", in the singular for one."""
    if total == 1:
        counted = SINGULAR.get(counted, counted)
    return f"{total} {counted}"


def page_prompt(page, counted: str) -> str:
    """Return the Prompt of a page of a list, such as "87 entries, page 2/3"."""
    if page.count > 1:
        return f"{count_text(page.total, counted)}, page {page.number}/{page.count}"
    return count_text(page.total, counted)


def scope_items(request: PhoneRequest, scope: Scope) -> list[MenuItem]:
    """Return the menu items of a directory: the three searches and browse A–Z."""
    items = [
        MenuItem(form.menu_name, request.url(f"{scope.path}/search/{kind}"))
        for kind, form in SEARCHES.items()
    ]
    items.append(MenuItem("Browse A\u2013Z", request.url(f"{scope.path}/browse")))
    return items


def label_items(request: PhoneRequest, labels: list[Label]) -> list[MenuItem]:
    """Return one menu item per label, leading to the label's own menu."""
    return [
        MenuItem(label.name, request.url(Scope.of_label(label).path))
        for label in labels
    ]


def menu_paging_softkeys(
    request: PhoneRequest, page, link: Callable[[int], str]
) -> list[SoftKey]:
    """Return Select and Exit, plus Next and Prev where there are pages.

    As on directory pages, custom softkeys replace the phone's own, so Select and
    Exit are added back. All four fit the four softkeys a 79xx shows at once.
    """
    softkeys = [
        SoftKey("Select", "SoftKey:Select", 1),
        SoftKey("Exit", "SoftKey:Exit", 2),
    ]
    if page.has_next:
        softkeys.append(SoftKey("Next", link(page.number + 1), 3))
    if page.has_previous:
        softkeys.append(SoftKey("Prev", link(page.number - 1), 4))
    return softkeys


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

    @property
    def has_label_menus(self) -> bool:
        return self.appliance.config.directory.label_menus

    def menu(self) -> bytes:
        """Return the top menu: the three searches, browse A–Z and, with label_menus
        on, one item per label, or a Groups item when they do not all fit."""
        request = PhoneRequest(self.appliance)
        items = scope_items(request, WHOLE_DIRECTORY)
        if self.has_label_menus:
            labels = request.query(self.directory.index).labels
            if len(items) + len(labels) <= MAX_MENU_ITEMS:
                items += label_items(request, labels)
            else:
                items.append(MenuItem("Groups", request.url(LABELS_PATH)))
        return request.send(
            "CiscoIPPhoneMenu",
            render_menu,
            self.appliance.config.directory.title,
            items,
        )

    # -- labels ---------------------------------------------------------------

    def labels(self) -> bytes:
        """Return a page of the Groups menu: every label, LABELS_PER_PAGE a page."""
        request = PhoneRequest(self.appliance)
        if not self.has_label_menus:
            raise bottle.HTTPError(404, "Group directories are turned off.")
        labels = request.query(self.directory.index).labels
        if not labels:
            return request.send(
                "CiscoIPPhoneText",
                render_text,
                "Groups",
                "No contact with a number belongs to a group yet.",
            )
        page = paginate(labels, query_page(), LABELS_PER_PAGE)
        self._expire_later_pages(page)
        softkeys = []
        if page.count > 1:
            softkeys = menu_paging_softkeys(
                request, page, lambda number: request.url(LABELS_PATH, page=number)
            )
        return request.send(
            "CiscoIPPhoneMenu",
            render_menu,
            "Groups",
            label_items(request, page.items),
            prompt=page_prompt(page, "groups"),
            softkeys=softkeys,
        )

    def label_menu(self, label_id: str) -> bytes:
        """Return a label's own menu: its three searches and browse A–Z."""
        request = PhoneRequest(self.appliance)
        scope = self._scope(request.query(self.directory.index), label_id)
        return request.send(
            "CiscoIPPhoneMenu",
            render_menu,
            scope.label.name,
            scope_items(request, scope),
            prompt=count_text(scope.label.count, "entries"),
        )

    def _scope(self, index: DirectoryIndex | None, label_id: str | None) -> Scope:
        """Return the scope of a label id from the URL, or of the whole directory.

        An id no label of ``index`` has (the label lost its last contact, or label
        menus are off) gives 404 with a page the phone shows.
        """
        if label_id is None:
            return WHOLE_DIRECTORY
        label = index.get_label(label_id) if index is not None else None
        if label is None:
            raise bottle.HTTPError(
                404, "This group is not in the directory any more. Go back and "
                "choose again."
            )
        return Scope.of_label(label)

    # -- browse ---------------------------------------------------------------

    def browse(self, label_id: str | None = None) -> bytes:
        """Return the letter menu, a group's subgroups, or a page of a group."""
        request = PhoneRequest(self.appliance)
        prefix = normalize_prefix(query_text("group") or "")
        index = request.query(self.directory.index)
        scope = self._scope(index, label_id)
        if not prefix:
            groups, positions = index.letter_groups(scope.label), []
        else:
            groups, positions = request.query(
                lambda: index.browse(prefix, scope.label)
            )
        if not groups and not positions:
            return self._empty_group(request, scope, prefix)
        browse_path = f"{scope.path}/browse"
        title = self._browse_title(request, scope, prefix)
        if groups:
            items = [
                MenuItem(
                    f"{group.title} ({group.count})",
                    request.url(browse_path, group=group.param),
                )
                for group in groups[:MAX_MENU_ITEMS]
            ]
            return request.send("CiscoIPPhoneMenu", render_menu, title, items)

        group = BrowseGroup(prefix, len(positions))
        return self._directory_page(
            request,
            index,
            positions,
            title,
            "entries",
            lambda number: request.url(browse_path, group=group.param, page=number),
        )

    def _browse_title(self, request: PhoneRequest, scope: Scope, prefix: str) -> str:
        """Return "Browse A–Z" or "Browse: Sm"; in a label "Staff" or "Staff: Sm"."""
        group_title = BrowseGroup(prefix, 0).title
        if scope.label is not None:
            if not prefix:
                return scope.label.name
            return request.title(scope.label.name, group_title)
        return f"Browse: {group_title}" if prefix else "Browse A\u2013Z"

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

    def _empty_group(self, request: PhoneRequest, scope: Scope, prefix: str) -> bytes:
        if prefix:
            text = "No contact is filed here any more. Go back and choose again."
        else:
            text = "The directory has no contacts yet."
        return request.send(
            "CiscoIPPhoneText",
            render_text,
            self._browse_title(request, scope, ""),
            text,
            softkeys=[
                SoftKey("Back", request.url(f"{scope.path}/browse"), 1),
                SoftKey("Exit", "SoftKey:Exit", 2),
            ],
        )

    def _expire_later_pages(self, page) -> None:
        # A page the phone holds as expired is skipped by Exit, so Exit from page 3
        # returns to page 1 rather than walking back through every page.
        if page.number > 1:
            bottle.response.set_header("Expires", "-1")

    # -- search ---------------------------------------------------------------

    def search(self, kind: str, label_id: str | None = None) -> bytes:
        """Return the search form, or the results when the form sent ``q``."""
        request = PhoneRequest(self.appliance)
        # The whole directory's form needs no index, so it shows while the store
        # is still unreadable.
        index = request.query(self.directory.index) if label_id is not None else None
        scope = self._scope(index, label_id)
        text = query_text("q")
        if text is None:
            return self._form(request, scope, kind)
        text = self._fit_query(request, scope, kind, text.strip())
        if not text:
            return self._form(
                request, scope, kind, prompt=SEARCHES[kind].empty_prompt
            )
        index, positions = request.query(
            lambda: self.directory.search(kind, text, scope.label, index)
        )
        if not positions:
            return self._no_match(request, scope, kind, text)

        return self._directory_page(
            request,
            index,
            positions,
            f"{SEARCHES[kind].result_title}: {text}",
            "found",
            lambda number: self._results_url(request, scope, kind, text, number),
        )

    def _no_match(
        self, request: PhoneRequest, scope: Scope, kind: str, text: str
    ) -> bytes:
        if scope.label is None:
            message = f'No contact matches "{text}".'
        else:
            message = f'No contact in {scope.label.name} matches "{text}".'
        softkeys = [
            SoftKey("Search", request.url(f"{scope.path}/search/{kind}"), 1),
            SoftKey("Exit", "SoftKey:Exit", 2),
        ]
        return request.send(
            "CiscoIPPhoneText",
            render_text,
            SEARCHES[kind].title,
            message,
            softkeys=softkeys,
        )

    def _form(
        self,
        request: PhoneRequest,
        scope: Scope,
        kind: str,
        prompt: str | None = None,
    ) -> bytes:
        """Return a search form. In a label, the form's title is the label's name."""
        form = SEARCHES[kind]
        return request.send(
            "CiscoIPPhoneInput",
            render_input,
            form.title if scope.label is None else scope.label.name,
            request.url(f"{scope.path}/search/{kind}"),
            [InputItem(form.field, "q", form.flags)],
            prompt=prompt,
        )

    def _results_url(
        self, request: PhoneRequest, scope: Scope, kind: str, text: str, page: int
    ) -> str:
        return request.url(f"{scope.path}/search/{kind}", q=text, page=page)

    def _fit_query(
        self, request: PhoneRequest, scope: Scope, kind: str, text: str
    ) -> str:
        """Cut search text until its Next link fits URL_MAX on any page.

        The search runs on the cut text too, so every page of a result shows the
        same search.
        """
        while text and (
            len(self._results_url(request, scope, kind, text, _WIDEST_PAGE)) > URL_MAX
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
    app.route(LABELS_PATH, "GET", views.labels)
    app.route(f"{LABELS_PATH}/<label_id>", "GET", views.label_menu)
    app.route(f"{LABELS_PATH}/<label_id>/browse", "GET", views.browse)
    app.route(
        f"{LABELS_PATH}/<label_id>/search/<kind:re:name|number|keypad>",
        "GET",
        views.search,
    )
    app.route("/lookup", "GET", views.lookup)
