"""The directory: contacts from the store, searched and paged for phones."""

from __future__ import annotations

from appliance.config import Config
from appliance.events import Events
from appliance.store import Store


class Directory:
    def __init__(self, store: Store, config: Config, events: Events) -> None:
        self.store = store
        self.config = config
        self.events = events
