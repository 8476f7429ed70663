"""A fake Google on 127.0.0.1: OAuth endpoints and the People API list methods.

It lets the tests, and a demo on one machine, run the appliance's real code path:
the appliance reaches it through ``[google] api_root``, ``token_uri`` and
``auth_uri``. It is part of the tests and is not built into the binary.

Start a demo server with 200 contacts and a ready config folder::

    .venv/bin/python -m tests.fake_google --port 8765 --contacts 200 --demo-dir demo

Implemented, following the People API v1 discovery document:

- ``GET  /o/oauth2/auth``: consent, answered at once with a redirect that carries
  a code (or ``error=access_denied``); PKCE with S256 is required
- ``POST /token``: authorization_code (checks the PKCE verifier), refresh_token,
  and the JWT bearer grant of service accounts
- ``GET  /v1/people/me/connections``, ``/v1/otherContacts``,
  ``/v1/people:listDirectoryPeople``, ``/v1/contactGroups``: paging, sync tokens
  that carry their request parameters and can expire, deletions
  (``metadata.deleted``) and changed resource names (``previousResourceNames``)

Faults are switched on from Python (``add_fault``, ``revoke_refresh_tokens``,
``expire_sync_tokens``) or, for the demo, with command-line options.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

CLIENT_ID = "fake-client.apps.googleusercontent.com"
CLIENT_SECRET = "fake-client-secret"
SERVICE_ACCOUNT = "phonebook@fake-project.iam.gserviceaccount.com"
SCOPE_PREFIX = "https://www.googleapis.com/auth/"
SCOPE_CONTACTS = SCOPE_PREFIX + "contacts.readonly"
SCOPE_OTHER = SCOPE_PREFIX + "contacts.other.readonly"
SCOPE_DIRECTORY = SCOPE_PREFIX + "directory.readonly"

# Query parameters every Google API accepts (the discovery document's "parameters").
STANDARD_PARAMS = {"$.xgafv", "access_token", "alt", "callback", "fields", "key",
                   "oauth_token", "prettyPrint", "quotaUser", "uploadType", "upload_protocol"}
PERSON_FIELDS = {"addresses", "ageRanges", "biographies", "birthdays", "calendarUrls",
                 "clientData", "coverPhotos", "emailAddresses", "events", "externalIds",
                 "genders", "imClients", "interests", "locales", "locations", "memberships",
                 "metadata", "miscKeywords", "names", "nicknames", "occupations",
                 "organizations", "phoneNumbers", "photos", "relations", "sipAddresses",
                 "skills", "urls", "userDefined"}
OTHER_CONTACT_FIELDS = {"emailAddresses", "metadata", "names", "phoneNumbers", "photos"}
DIRECTORY_SOURCES = {"DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE",
                     "DIRECTORY_SOURCE_TYPE_DOMAIN_CONTACT"}


@dataclass(frozen=True)
class Method:
    """One People API list method as the fake serves it."""

    name: str
    path: str
    chain: str | None  # which people it lists; None for contact groups
    item_key: str
    params: frozenset[str]
    scope: str
    mask_param: str | None


METHODS = {
    "/v1/people/me/connections": Method(
        "connections.list", "/v1/people/me/connections", "connections", "connections",
        frozenset({"pageSize", "pageToken", "personFields", "requestMask.includeField",
                   "requestSyncToken", "sortOrder", "sources", "syncToken"}),
        SCOPE_CONTACTS, "personFields"),
    "/v1/otherContacts": Method(
        "otherContacts.list", "/v1/otherContacts", "other", "otherContacts",
        frozenset({"pageSize", "pageToken", "readMask", "requestSyncToken", "sources",
                   "syncToken"}),
        SCOPE_OTHER, "readMask"),
    "/v1/people:listDirectoryPeople": Method(
        "people.listDirectoryPeople", "/v1/people:listDirectoryPeople", "directory", "people",
        frozenset({"mergeSources", "pageSize", "pageToken", "readMask", "requestSyncToken",
                   "sources", "syncToken"}),
        SCOPE_DIRECTORY, "readMask"),
    "/v1/contactGroups": Method(
        "contactGroups.list", "/v1/contactGroups", None, "contactGroups",
        frozenset({"groupFields", "pageSize", "pageToken", "syncToken"}),
        SCOPE_CONTACTS, None),
}
# Scopes that also grant a method, such as read-write contacts for reading.
BROADER_SCOPES = {SCOPE_CONTACTS: {SCOPE_PREFIX + "contacts"}}


@dataclass
class Fault:
    """A fault served instead of (or before) a normal answer, ``times`` times."""

    method: str  # a method name such as connections.list, "token", or "*"
    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    malformed: bool = False
    times: int = 1


@dataclass
class FakePerson:
    """A person as the fake keeps it; ``to_json`` renders the People API form."""

    resource_name: str
    given: str
    family: str
    numbers: list[tuple[str, str, str | None]]  # value, type, canonicalForm
    company: str = ""
    title: str = ""
    nickname: str = ""
    groups: list[str] = field(default_factory=list)  # contactGroups/... names
    etag: str = ""
    source_id: str = ""

    def to_json(self, fields: set[str]) -> dict[str, Any]:
        source = {"type": "CONTACT", "id": self.source_id}
        primary = {"primary": True, "source": source}
        other = {"source": source}
        person: dict[str, Any] = {"resourceName": self.resource_name, "etag": self.etag}
        display = " ".join(part for part in (self.given, self.family) if part)
        if "names" in fields and display:
            person["names"] = [{
                "metadata": primary, "displayName": display, "givenName": self.given,
                "familyName": self.family, "unstructuredName": display,
                "displayNameLastFirst": ", ".join(p for p in (self.family, self.given) if p)}]
        if "nicknames" in fields and self.nickname:
            person["nicknames"] = [{"metadata": primary, "value": self.nickname}]
        if "organizations" in fields and (self.company or self.title):
            person["organizations"] = [{"metadata": primary, "name": self.company,
                                        "title": self.title, "type": "work",
                                        "formattedType": "Work", "current": True}]
        if "phoneNumbers" in fields and self.numbers:
            # The primary number is listed last on purpose: items have no fixed order.
            numbers = []
            for index, (value, kind, canonical) in enumerate(self.numbers):
                item = {"metadata": primary if index == 0 else other, "value": value,
                        "type": kind, "formattedType": kind.capitalize()}
                if canonical:
                    item["canonicalForm"] = canonical
                numbers.append(item)
            person["phoneNumbers"] = numbers[1:] + numbers[:1]
        if "memberships" in fields:
            person["memberships"] = [
                {"metadata": other, "contactGroupMembership": {
                    "contactGroupId": group.split("/", 1)[1],
                    "contactGroupResourceName": group}}
                for group in ["contactGroups/myContacts"] + self.groups]
        if "metadata" in fields:
            person["metadata"] = {"sources": [{**source, "etag": self.etag}],
                                  "objectType": "PERSON"}
        return person


GIVEN = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia",
         "Ken", "Margaret", "Dennis", "Hedy", "Niklaus", "Sophie", "Tim", "Karen", "Linus",
         "Annie", "Claude", "Mary", "Leslie", "Shafi", "Whitfield", "Jean", "Tony", "Ivan",
         "Katherine", "Vint", "Marian"]
FAMILY = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
          "Perlman", "Thompson", "Hamilton", "Ritchie", "Lamarr", "Wirth", "Wilson",
          "Berners-Lee", "Spärck Jones", "Torvalds", "Easley", "Shannon", "Kenneth", "Lamport",
          "Goldwasser", "Diffie", "Sammet", "Hoare", "Sutherland", "Johnson", "Cerf", "Rejewski"]
COMPANIES = ["Northwind Traders", "Contoso Ltd", "Fabrikam", "Tailspin Toys", "Litware"]
TITLES = ["Engineer", "Sales", "Accounts", "Reception", "Director", ""]
LABELS = ["Staff", "Suppliers", "Customers"]


def make_number(rng: random.Random, index: int) -> tuple[str, str, str | None]:
    """Return a fictional number in one of several hand-typed styles."""
    area = 200 + index % 700
    line = f"{index % 100:02d}"
    style = rng.randrange(5)
    if style == 0:
        return f"+1 {area}-555-01{line}", "work", f"+1{area}55501{line}"
    if style == 1:
        return f"({area}) 555-01{line} ext. {index % 90 + 10}", "work", None
    if style == 2:
        return f"+44 20 7946 0{index % 1000:03d}", "mobile", f"+44207946{index % 1000:04d}"
    if style == 3:
        return f"{area}.555.01{line}", "home", f"+1{area}55501{line}"
    return f"+1{area}55501{line}", "mobile", f"+1{area}55501{line}"


class FakeGoogle:
    """Contacts, tokens and faults, served over HTTP by ``start()``."""

    def __init__(self, contacts: int = 0, seed: int = 7, other_contacts: int = 0,
                 directory_people: int = 0) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.seq = 0
        self.token_epoch = 0  # sync tokens of an older epoch have expired
        self.expired_status = 400
        self.access_token_lifetime_s = 3600
        self.delay_s = 0.0  # wait before every People API answer ("slow answers")
        self.people: dict[str, dict[str, FakePerson]] = {
            "connections": {}, "other": {}, "directory": {}}
        # Per chain: resource name -> sequence number of its last change.
        self.changed: dict[str, dict[str, int]] = {chain: {} for chain in self.people}
        self.deleted: dict[str, dict[str, int]] = {chain: {} for chain in self.people}
        self.renamed: dict[str, list[tuple[int, str, str]]] = {c: [] for c in self.people}
        self.groups: dict[str, str] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, tuple[float, set[str]]] = {}
        self.refresh_tokens: dict[str, set[str]] = {}
        self.delegated_subjects: set[str] = {"it@example.com"}
        self.consent_error: str | None = None
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for name in LABELS:
            self.add_label(name)
        for index in range(contacts):
            self._add_generated("connections", index)
        for index in range(other_contacts):
            self._add_generated("other", index + 100_000)
        for index in range(directory_people):
            self._add_generated("directory", index + 200_000)

    # -- data changes ---------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _new_resource_name(self, chain: str) -> tuple[str, str]:
        source_id = secrets.token_hex(8)
        prefix = "otherContacts/c" if chain == "other" else "people/c"
        return prefix + source_id, source_id

    def _add_generated(self, chain: str, index: int) -> str:
        rng = self.rng
        numbers = [make_number(rng, index)]
        if rng.random() < 0.3:
            numbers.append(make_number(rng, index + 7))
        labels = [name for name in LABELS if rng.random() < 0.3]
        return self.add_person(
            rng.choice(GIVEN), f"{rng.choice(FAMILY)} {index}", numbers=numbers,
            company=rng.choice(COMPANIES), title=rng.choice(TITLES),
            nickname=rng.choice(["", "", "", "Bob", "Kat"]), labels=labels, chain=chain)

    def add_person(self, given: str, family: str, numbers: list | None = None,
                   company: str = "", title: str = "", nickname: str = "",
                   labels: list[str] = (), chain: str = "connections") -> str:
        """Add a person and return its resource name."""
        with self.lock:
            resource_name, source_id = self._new_resource_name(chain)
            normalised = [(n, "work", None) if isinstance(n, str) else tuple(n)
                          for n in (numbers or [])]
            person = FakePerson(resource_name, given, family, normalised, company, title,
                                nickname, [self.label_resource(name) for name in labels],
                                source_id=source_id)
            self._touch(chain, person)
            return resource_name

    def update_person(self, resource_name: str, chain: str = "connections", **changes) -> None:
        """Change fields of a person (given, family, numbers, company, title, ...)."""
        with self.lock:
            person = self.people[chain][resource_name]
            if "labels" in changes:
                changes["groups"] = [self.label_resource(name) for name in changes.pop("labels")]
            if "numbers" in changes:
                changes["numbers"] = [(n, "work", None) if isinstance(n, str) else tuple(n)
                                      for n in changes["numbers"]]
            for key, value in changes.items():
                setattr(person, key, value)
            self._touch(chain, person)

    def delete_person(self, resource_name: str, chain: str = "connections") -> None:
        with self.lock:
            del self.people[chain][resource_name]
            self.changed[chain].pop(resource_name, None)
            self.deleted[chain][resource_name] = self._next_seq()

    def rename_person(self, resource_name: str, chain: str = "connections") -> str:
        """Give a person a new resource name, as Google does when a profile links."""
        with self.lock:
            person = self.people[chain].pop(resource_name)
            self.changed[chain].pop(resource_name, None)
            person.resource_name, person.source_id = self._new_resource_name(chain)
            self.renamed[chain].append((self.seq + 1, resource_name, person.resource_name))
            self._touch(chain, person)
            return person.resource_name

    def _touch(self, chain: str, person: FakePerson) -> None:
        seq = self._next_seq()
        person.etag = f"%E{seq:08d}"
        self.people[chain][person.resource_name] = person
        self.changed[chain][person.resource_name] = seq

    def add_label(self, name: str) -> str:
        with self.lock:
            resource_name = f"contactGroups/{hashlib.sha1(name.encode()).hexdigest()[:12]}"
            self.groups[resource_name] = name
            return resource_name

    def label_resource(self, name: str) -> str:
        for resource_name, label in self.groups.items():
            if label == name:
                return resource_name
        return self.add_label(name)

    def first_resource_names(self, count: int, chain: str = "connections") -> list[str]:
        with self.lock:
            return list(self.people[chain])[:count]

    # -- faults and tokens ----------------------------------------------------------

    def add_fault(self, method: str, **kwargs) -> Fault:
        """Queue a fault for ``method`` (a method name, ``token`` or ``*``)."""
        fault = Fault(method=method, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def expire_sync_tokens(self) -> None:
        with self.lock:
            self.token_epoch += 1

    def revoke_refresh_tokens(self) -> None:
        """Make every refresh token fail with invalid_grant, as a revoked grant does."""
        with self.lock:
            self.refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def issue_refresh_token(self, scopes: set[str] | None = None) -> str:
        """Make a refresh token as if consent had happened, for authorised-user files."""
        token = "1//fake-refresh-" + secrets.token_urlsafe(16)
        with self.lock:
            self.refresh_tokens[token] = set(scopes or {SCOPE_CONTACTS, SCOPE_OTHER,
                                                        SCOPE_DIRECTORY})
        return token

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Return the recorded requests of one method, oldest first."""
        with self.lock:
            return [request for request in self.requests if request["method"] == method]

    def _take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # -- server ---------------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1") -> "FakeGoogle":
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _QuietServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-google", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """Return the ``[google]`` settings that point the appliance at this fake."""
        return {"api_root": self.url + "/", "token_uri": self.url + "/token",
                "auth_uri": self.url + "/o/oauth2/auth",
                "retry_base_delay_seconds": "0.01", "retry_max_delay_seconds": "0.2",
                "request_timeout_seconds": "5"}

    def client_file(self, folder: Path) -> Path:
        """Write a Desktop app OAuth client file, as Google Cloud Console gives one."""
        path = Path(folder) / "client_secret.json"
        path.write_text(json.dumps({"installed": {
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "project_id": "fake-project", "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "redirect_uris": ["http://localhost"]}}), encoding="utf-8")
        return path

    def authorised_user_file(self, folder: Path, scopes: set[str] | None = None) -> Path:
        """Write authorised-user credentials with a fresh refresh token."""
        path = Path(folder) / "authorized_user.json"
        path.write_text(json.dumps({
            "type": "authorized_user", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "refresh_token": self.issue_refresh_token(scopes)}), encoding="utf-8")
        return path

    # -- OAuth ----------------------------------------------------------------------

    def consent(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        required = ("client_id", "redirect_uri", "response_type", "scope",
                    "code_challenge", "code_challenge_method")
        missing = [name for name in required if not query.get(name)]
        if missing or query.get("client_id") != CLIENT_ID:
            return 400, {}, {"error": "invalid_request", "missing": missing}
        redirect = query["redirect_uri"]
        if not redirect.startswith(("http://127.0.0.1:", "http://localhost")):
            return 400, {}, {"error": "redirect_uri_mismatch"}
        if query["code_challenge_method"] != "S256":
            return 400, {}, {"error": "invalid_request", "detail": "PKCE S256 required"}
        answer = {"state": query.get("state", "")}
        if self.consent_error:
            answer["error"] = self.consent_error
        else:
            code = "4/fake-" + secrets.token_urlsafe(24)
            with self.lock:
                self.codes[code] = {"redirect_uri": redirect, "scopes": set(query["scope"].split()),
                                    "challenge": query["code_challenge"],
                                    "expires": time.time() + 300,
                                    "offline": query.get("access_type") == "offline"}
            answer.update({"code": code, "scope": query["scope"]})
        return 302, {"Location": f"{redirect}?{urlencode(answer)}"}, None

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._token_for_service_account(form.get("assertion", ""))
        if client_id != CLIENT_ID or client_secret != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        if grant == "authorization_code":
            return self._token_for_code(form)
        if grant == "refresh_token":
            with self.lock:
                scopes = self.refresh_tokens.get(form.get("refresh_token", ""))
            if scopes is None:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            return 200, self._issue_access_token(scopes)
        return 400, {"error": "unsupported_grant_type"}

    def _token_for_code(self, form: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant["expires"] < time.time():
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not verifier or challenge != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "Missing code verifier."}
        answer = self._issue_access_token(grant["scopes"])
        if grant["offline"]:
            answer["refresh_token"] = self.issue_refresh_token(grant["scopes"])
        return 200, answer

    def _token_for_service_account(self, assertion: str) -> tuple[int, Any]:
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        if claims.get("iss") != SERVICE_ACCOUNT:
            return 400, {"error": "invalid_grant", "error_description": "Invalid issuer."}
        if claims.get("sub") not in self.delegated_subjects:
            return 401, {"error": "unauthorized_client", "error_description":
                         "Client is unauthorized to retrieve access tokens using this method."}
        return 200, self._issue_access_token(set(claims.get("scope", "").split()))

    def _issue_access_token(self, scopes: set[str]) -> dict[str, Any]:
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[token] = (time.time() + self.access_token_lifetime_s, set(scopes))
        return {"access_token": token, "expires_in": self.access_token_lifetime_s,
                "scope": " ".join(sorted(scopes)), "token_type": "Bearer"}

    def check_access(self, authorization: str | None, method: Method) -> tuple[int, Any] | None:
        token = (authorization or "")[7:] if (authorization or "").startswith("Bearer ") else ""
        with self.lock:
            grant = self.access_tokens.get(token)
        if grant is None or grant[0] < time.time():
            return 401, api_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                  "credentials. Expected OAuth 2 access token.")
        accepted = {method.scope} | BROADER_SCOPES.get(method.scope, set())
        if not grant[1] & accepted:
            return 403, api_error(403, "PERMISSION_DENIED",
                                  "Request had insufficient authentication scopes.",
                                  reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        return None

    # -- the People API ----------------------------------------------------------------

    def list_method(self, method: Method, query: dict[str, list[str]]) -> tuple[int, Any]:
        problem = _check_params(method, query)
        if problem:
            return 400, api_error(400, "INVALID_ARGUMENT", problem)
        single = {key: values[-1] for key, values in query.items()}
        page_size = int(single.get("pageSize") or 0) or (30 if method.chain is None else 100)
        params_key = _params_key(query)
        with self.lock:
            if method.chain is None:
                items = [{"resourceName": name, "etag": f"#{name[-6:]}", "name": label,
                          "formattedName": label, "groupType": "USER_CONTACT_GROUP",
                          "metadata": {"updateTime": "2026-01-01T00:00:00Z"}}
                         for name, label in sorted(self.groups.items())]
                items += [{"resourceName": "contactGroups/myContacts", "groupType":
                           "SYSTEM_CONTACT_GROUP", "name": "myContacts",
                           "formattedName": "My Contacts"}]
                return self._page(method, items, single, page_size, params_key, None)
            if "syncToken" in single:
                decoded = self._decode_sync_token(single["syncToken"], method, params_key)
                if isinstance(decoded, tuple):
                    return decoded
                items = self._changes_since(method, decoded, _mask(method, single))
            else:
                fields = _mask(method, single)
                # Only the page's people are turned into JSON: all 25,000 for each
                # of 25 pages took longer than the sync being measured.
                people = list(self.people[method.chain].values())
                return self._page(method, people, single, page_size, params_key, self.seq,
                                  render=lambda person: person.to_json(fields))
            return self._page(method, items, single, page_size, params_key, self.seq)

    def _page(self, method: Method, items: list, single: dict[str, str], page_size: int,
              params_key: str, snapshot: int | None,
              render: Callable[[Any], dict] | None = None) -> tuple[int, Any]:
        offset = 0
        if single.get("pageToken"):
            try:
                token = json.loads(base64.urlsafe_b64decode(single["pageToken"]))
                offset, token_params, snapshot = token["o"], token["p"], token["s"]
            except (ValueError, KeyError, TypeError):
                return 400, api_error(400, "INVALID_ARGUMENT", "Page token is not valid.")
            if token_params != params_key:
                return 400, api_error(400, "INVALID_ARGUMENT", "Parameters must match the "
                                      "request that returned the page token.")
        page = items[offset:offset + page_size]
        if render is not None:
            page = [render(item) for item in page]
        answer: dict[str, Any] = {method.item_key: page}
        if method.chain == "connections" or method.chain is None:
            answer["totalItems"] = len(items)
        elif method.chain == "other":
            answer["totalSize"] = len(items)
        if offset + page_size < len(items):
            answer["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(
                {"o": offset + page_size, "p": params_key, "s": snapshot}).encode()).decode()
        elif single.get("requestSyncToken") == "true" and method.chain is not None:
            answer["nextSyncToken"] = base64.urlsafe_b64encode(json.dumps(
                {"s": snapshot, "e": self.token_epoch, "p": params_key,
                 "c": method.chain}).encode()).decode()
        if not answer[method.item_key]:
            del answer[method.item_key]  # Google leaves out empty lists
        return 200, answer

    def _decode_sync_token(self, token: str, method: Method,
                           params_key: str) -> int | tuple[int, Any]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token))
            seq, epoch, token_params, chain = (decoded["s"], decoded["e"], decoded["p"],
                                               decoded["c"])
        except (ValueError, KeyError, TypeError):
            return 400, api_error(400, "INVALID_ARGUMENT", "Sync token is not valid.")
        if epoch != self.token_epoch:
            status = self.expired_status
            return status, api_error(
                status, "FAILED_PRECONDITION", "Sync token is expired. Clear local cache and "
                "retry call without the sync token.", reason="EXPIRED_SYNC_TOKEN")
        if token_params != params_key or chain != method.chain:
            return 400, api_error(400, "INVALID_ARGUMENT", "Parameters must match the "
                                  "request that returned the sync token.")
        return seq

    def _changes_since(self, method: Method, seq: int, fields: set[str]) -> list[dict]:
        chain = method.chain
        items = []
        for name, changed in sorted(self.changed[chain].items(), key=lambda item: item[1]):
            if changed <= seq:
                continue
            person = self.people[chain][name].to_json(fields)
            previous = [old for when, old, new in self.renamed[chain]
                        if new == name and when > seq]
            if previous:
                person.setdefault("metadata", {})["previousResourceNames"] = previous
            items.append(person)
        for name, deleted in self.deleted[chain].items():
            if deleted > seq:
                items.append({"resourceName": name, "etag": f"%D{deleted:08d}",
                              "metadata": {"deleted": True, "sources": [
                                  {"type": "CONTACT", "id": name.rsplit("/c", 1)[-1]}]}})
        return items


def api_error(code: int, status: str, message: str, reason: str | None = None) -> dict:
    """Build a Google API error body with an ErrorInfo detail when ``reason`` is given."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": reason, "domain": "googleapis.com",
                             "metadata": {"service": "people.googleapis.com"}}]
    return {"error": error}


def _check_params(method: Method, query: dict[str, list[str]]) -> str | None:
    unknown = set(query) - method.params - STANDARD_PARAMS
    if unknown:
        name = sorted(unknown)[0]
        return f'Invalid JSON payload received. Unknown name "{name}": Cannot bind query parameter.'
    single = {key: values[-1] for key, values in query.items()}
    try:
        page_size = int(single.get("pageSize") or 0)
    except ValueError:
        return "Invalid value at 'page_size' (TYPE_INT32)."
    if not 0 <= page_size <= 1000:
        return "Page size must be between 0 and 1000."
    if method.mask_param and not single.get(method.mask_param):
        return f"{method.mask_param} is required. Please specify one or more valid paths."
    if method.mask_param:
        allowed = OTHER_CONTACT_FIELDS if method.chain == "other" else PERSON_FIELDS
        fields = set(single[method.mask_param].split(","))
        if fields - allowed:
            return f"Invalid {method.mask_param} path: {sorted(fields - allowed)[0]}."
    if method.chain == "directory":
        sources = set(query.get("sources", []))
        if not sources or sources - DIRECTORY_SOURCES:
            return "sources is required and must name DIRECTORY_SOURCE_TYPE values."
    return None


def _params_key(query: dict[str, list[str]]) -> str:
    kept = {key: sorted(values) for key, values in query.items()
            if key not in ("pageToken", "syncToken")}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def _mask(method: Method, single: dict[str, str]) -> set[str]:
    return set(single.get(method.mask_param or "", "").split(","))


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a timed-out or killed sync) is expected here.
        error = sys.exc_info()[1]
        if not isinstance(error, (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read fake.requests instead

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:
        payload = raw if raw is not None else (
            json.dumps(body).encode() if body is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _record(self, method: str, query: dict[str, list[str]]) -> None:
        with self.fake.lock:
            self.fake.requests.append({"method": method, "path": self.path, "query": query,
                                       "headers": dict(self.headers.items()),
                                       "at": time.time()})

    def _apply_fault(self, method: str) -> bool:
        """Serve a queued fault; return True when it replaced the answer."""
        fault = self.fake._take_fault(method)
        if fault is None:
            return False
        if fault.delay_s:
            time.sleep(fault.delay_s)
        if fault.malformed:
            self._send(200, None, raw=b'{"connections": [{"resourceName": "people/c1"')
            return True
        if fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            status_name = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                           503: "UNAVAILABLE"}.get(fault.status, "UNKNOWN")
            self._send(fault.status, api_error(fault.status, status_name, "Fault injected."),
                       headers)
            return True
        return False  # a delay only: answer normally afterwards

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        if parts.path == "/o/oauth2/auth":
            self._record("consent", query)
            status, headers, body = self.fake.consent({k: v[-1] for k, v in query.items()})
            self._send(status, body, headers)
            return
        method = METHODS.get(parts.path)
        if method is None:
            self._send(404, api_error(404, "NOT_FOUND", "Method not found."))
            return
        self._record(method.name, query)
        if self.fake.delay_s:
            time.sleep(self.fake.delay_s)
        if self._apply_fault(method.name):
            return
        denied = self.fake.check_access(self.headers.get("Authorization"), method)
        if denied:
            self._send(*denied)
            return
        self._send(*self.fake.list_method(method, query))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if parts.path != "/token":
            self._send(404, api_error(404, "NOT_FOUND", "Method not found."))
            return
        self._record("token", {key: ["(hidden)"] for key in form})
        if self._apply_fault("token"):
            return
        self._send(*self.fake.token(form, self.headers.get("Authorization")))


# ---------------------------------------------------------------------------
# Command line, for demos.


def write_demo(fake: FakeGoogle, folder: Path, port_for_appliance: int) -> Path:
    """Write a config folder that points an appliance at ``fake``."""
    folder.mkdir(parents=True, exist_ok=True)
    client = fake.client_file(folder)
    fake.authorised_user_file(folder)
    settings = fake.settings()
    lines = ["[server]", "host = 127.0.0.1", f"port = {port_for_appliance}", "",
             "[storage]", f"data_dir = {folder.resolve() / 'data'}", "",
             "[google]", f"client_secrets = {client.resolve()}"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    config = folder / "config.ini"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_google",
                                     description="Serve a fake Google on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on")
    parser.add_argument("--contacts", type=int, default=200, help="contacts to generate")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    parser.add_argument("--demo-dir", type=Path, help="write config.ini, client_secret.json "
                        "and authorized_user.json for an appliance into this folder")
    parser.add_argument("--appliance-port", type=int, default=8080,
                        help="port written into the demo config.ini")
    parser.add_argument("--slow", type=float, default=0.0,
                        help="seconds to wait before each People API answer")
    args = parser.parse_args(argv)

    fake = FakeGoogle(contacts=args.contacts, seed=args.seed).start(port=args.port)
    fake.delay_s = args.slow
    print(f"fake Google listening on {fake.url} with {args.contacts} contacts")
    if args.demo_dir:
        config = write_demo(fake, args.demo_dir, args.appliance_port)
        print(f"demo config written to {config}; next:")
        print(f"  .venv/bin/python -m appliance auth --config {config} "
              f"--import {args.demo_dir / 'authorized_user.json'}")
        print(f"  .venv/bin/python -m appliance sync --config {config}")
        print(f"  .venv/bin/python -m appliance serve --config {config}")
    print("press Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
