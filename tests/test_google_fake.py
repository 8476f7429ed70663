"""The fake Google and the client agree with the People API discovery document."""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import reference_file
from tests.fake_google import METHODS, SCOPE_CONTACTS, STANDARD_PARAMS, FakeGoogle
from tests.google_fixtures import fake_google, google_config, google_sync  # noqa: F401

DISCOVERY_METHODS = {
    "connections.list": ("people", "connections", "list"),
    "otherContacts.list": ("otherContacts", None, "list"),
    "people.listDirectoryPeople": ("people", None, "listDirectoryPeople"),
    "contactGroups.list": ("contactGroups", None, "list"),
}
RESPONSES = {
    "connections.list": "ListConnectionsResponse",
    "otherContacts.list": "ListOtherContactsResponse",
    "people.listDirectoryPeople": "ListDirectoryPeopleResponse",
    "contactGroups.list": "ListContactGroupsResponse",
}


@pytest.fixture(scope="module")
def discovery() -> dict:
    return json.loads(reference_file("people.v1.json").read_text(encoding="utf-8"))


def documented_method(discovery: dict, name: str) -> dict:
    resource, child, method = DISCOVERY_METHODS[name]
    node = discovery["resources"][resource]
    if child:
        node = node["resources"][child]
    return node["methods"][method]


def unknown_keys(discovery: dict, schema: str, value: dict) -> set[str]:
    """Return keys of ``value`` (and nested objects) that ``schema`` does not define."""
    properties = discovery["schemas"][schema]["properties"]
    unknown = {f"{schema}.{key}" for key in value if key not in properties}
    for key, item in value.items():
        spec = properties.get(key, {})
        ref = spec.get("$ref") or spec.get("items", {}).get("$ref")
        items = item if isinstance(item, list) else [item]
        if ref and ref in discovery["schemas"]:
            for child in items:
                if isinstance(child, dict):
                    unknown |= unknown_keys(discovery, ref, child)
    return unknown


@pytest.mark.parametrize("name", sorted(DISCOVERY_METHODS))
def test_fake_paths_match_discovery(discovery, name):
    method = next(item for item in METHODS.values() if item.name == name)
    documented = documented_method(discovery, name)
    flat = documented.get("flatPath", documented["path"]).replace("{peopleId}", "me")
    assert method.path == "/" + flat
    assert method.params <= set(documented["parameters"]) - {"resourceName"}


def test_client_sends_only_documented_parameters(discovery, fake_google, google_sync):
    fake_google.add_person("Ada", "Lovelace", numbers=["+44 20 7946 0001"])
    sync, _ = google_sync(other_contacts="yes", workspace_directory="yes")
    sync.run()
    sync.run()
    for name in DISCOVERY_METHODS:
        documented = set(documented_method(discovery, name)["parameters"]) | STANDARD_PARAMS
        sent = {key for call in fake_google.calls(name) for key in call["query"]}
        assert sent, name
        assert sent <= documented, name


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_fake_answers_use_documented_fields(discovery, name):
    fake = FakeGoogle(contacts=3, other_contacts=2, directory_people=2).start()
    try:
        for resource_name in fake.first_resource_names(1):
            fake.rename_person(resource_name)
        token = fake._issue_access_token({SCOPE_CONTACTS, "https://www.googleapis.com/auth/"
                                          "contacts.other.readonly",
                                          "https://www.googleapis.com/auth/directory.readonly"})
        method = next(item for item in METHODS.values() if item.name == name)
        params = {"pageSize": "2", "requestSyncToken": "true"}
        if method.mask_param:
            params[method.mask_param] = "names,phoneNumbers,metadata"
        if name == "connections.list":
            params["personFields"] = "names,nicknames,organizations,phoneNumbers,memberships,metadata"
        if name == "people.listDirectoryPeople":
            params["sources"] = "DIRECTORY_SOURCE_TYPE_DOMAIN_PROFILE"
        if name == "contactGroups.list":
            params.pop("requestSyncToken")
        answer = requests.get(fake.url + method.path, params=params, timeout=5,
                              headers={"Authorization": f"Bearer {token['access_token']}"})
        assert answer.status_code == 200
        assert unknown_keys(discovery, RESPONSES[name], answer.json()) == set()
    finally:
        fake.stop()


def test_fake_rejects_unknown_parameter(fake_google):
    token = fake_google._issue_access_token({SCOPE_CONTACTS})["access_token"]
    answer = requests.get(fake_google.url + "/v1/people/me/connections", timeout=5,
                          params={"personFields": "names", "bogus": "1"},
                          headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400
    assert "bogus" in answer.json()["error"]["message"]


def test_fake_requires_person_fields(fake_google):
    token = fake_google._issue_access_token({SCOPE_CONTACTS})["access_token"]
    answer = requests.get(fake_google.url + "/v1/people/me/connections", timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400
