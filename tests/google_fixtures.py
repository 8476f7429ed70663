"""Fixtures for the Google tests: a running fake Google and configs pointing at it.

Test modules import the fixtures by name (``from tests.google_fixtures import ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from appliance.config import Config
from appliance.events import Events
from appliance.sources.google import auth
from appliance.sources.google.sync import GoogleSync
from appliance.store import Store
from tests.fake_google import FakeGoogle


class EventLog:
    """Subscribes to every sync and Google event and keeps them in order."""

    NAMES = ("sync.started", "sync.finished", "google.call", "google.retry",
             "google.token_refresh", "google.authorisation")

    def __init__(self, events: Events) -> None:
        self.seen: list[tuple[str, dict]] = []
        for name in self.NAMES:
            events.subscribe(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(**fields) -> None:
            self.seen.append((name, fields))
        return record

    def named(self, name: str) -> list[dict]:
        return [fields for event, fields in self.seen if event == name]


@pytest.fixture
def fake_google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    yield fake
    fake.stop()


@pytest.fixture
def google_config(make_config, fake_google: FakeGoogle,
                  tmp_path: Path) -> Callable[..., Config]:
    """Build a config on the fake Google, with authorised-user credentials stored.

    Keyword arguments override ``[google]`` settings; ``authorise=False`` skips
    storing credentials, ``sections`` adds other ini sections.
    """

    def factory(authorise: bool = True, sections: dict | None = None, **google) -> Config:
        settings = {**fake_google.settings(), **google}
        config = make_config(google=settings, **(sections or {}))
        if authorise:
            auth.import_authorised_user(config, fake_google.authorised_user_file(tmp_path))
        return config

    return factory


@pytest.fixture
def google_sync(google_config) -> Iterator[Callable[..., tuple[GoogleSync, EventLog]]]:
    """Make a GoogleSync on a fresh store; stores are closed when the test ends."""
    stores: list[Store] = []

    def factory(config: Config | None = None, **google) -> tuple[GoogleSync, EventLog]:
        config = config or google_config(**google)
        store = Store.open(config.storage.data_dir)
        stores.append(store)
        events = Events()
        log = EventLog(events)
        return GoogleSync(config, store, events), log

    yield factory
    for store in stores:
        store.close()
