"""Build the running appliance in one place: config, store, directory, web app, threads.

The CLI, the frozen binary and the tests all call ``build_appliance``, so they run
the same objects wired the same way. Importing this module creates nothing.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from appliance.config import Config
from appliance.directory import Directory
from appliance.events import Events
from appliance.filemodes import check_secret_files, warn_if_config_readable
from appliance.logs import log_access
from appliance.monitoring import attach_monitoring, request_hooks
from appliance.notify import Notifier
from appliance.sources.google.scheduler import attach_google
from appliance.sources.sample import load_sample_contacts
from appliance.store import Store
from appliance.tokens import PhoneTokens, TokenUseRecorder
from appliance.web.access import AccessControl
from appliance.web.admin_auth import AdminAuth
from appliance.web.app import create_app
from appliance.web.errors import ErrorBoundary
from appliance.web.middleware import RequestMiddleware

logger = logging.getLogger(__name__)


@dataclass
class Appliance:
    """Everything one appliance process runs, with start and stop in one place."""

    config: Config
    store: Store
    directory: Directory
    events: Events = field(default_factory=Events)
    wsgi: Callable = None  # the outermost WSGI callable, middleware included
    bottle_app: Any = None
    middleware: RequestMiddleware = None
    # Background threads in start order; ``stop`` ends them in reverse order.
    threads: list[Any] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    # Scheme, host and port that every absolute URL given to a phone starts with.
    base_url: str = ""
    # Per-phone access tokens, checked by the access middleware.
    tokens: PhoneTokens = None
    # Monitoring, made by appliance.monitoring.attach_monitoring.
    metrics: Any = None
    health: Any = None
    request_history: Any = None
    # Admin login for /setup and the other admin pages.
    admin_auth: Any = None
    # Webhook and email notifications, made by build_appliance.
    notifier: Any = None
    # Google sync and its scheduler thread; None when Google is not configured.
    google_sync: Any = None
    sync_scheduler: Any = None

    def bind_port(self, port: int) -> None:
        """Record the port the server really listens on and derive ``base_url``."""
        self.base_url = derive_base_url(self.config, port)

    def start_threads(self) -> None:
        for worker in self.threads:
            worker.start()

    def stop(self) -> None:
        """Stop background threads in reverse start order, then close the store."""
        self.stop_event.set()
        for worker in reversed(self.threads):
            stop = getattr(worker, "stop", None)
            if stop is not None:
                stop()
        self.directory.close()
        self.store.close()


def derive_base_url(config: Config, port: int) -> str:
    """Return ``[server] public_base_url``, or one made from the listen address.

    NOTE: a derived URL on 0.0.0.0 uses this box's host name, which phones may not
    resolve; a startup warning asks the admin to set public_base_url.
    """
    if config.server.public_base_url:
        return config.server.public_base_url
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def ensure_sample_contacts(config: Config, store: Store) -> int:
    """Load the bundled sample contacts when the store is empty and samples are on."""
    if not config.directory.sample_contacts or store.count_contacts() > 0:
        return 0
    contacts = load_sample_contacts(config)
    store.replace_source("sample", contacts, also_clear=())
    logger.info("sample contacts loaded", extra={"contacts": len(contacts)})
    return len(contacts)


def build_appliance(config: Config) -> Appliance:
    """Open the store and build the directory and web app; start nothing yet.

    Raises ConfigError when a secret file is open to other users.
    """
    check_secret_files(config)
    warn_if_config_readable(config)
    store = Store.open(config.storage.data_dir)
    ensure_sample_contacts(config, store)
    events = Events()
    directory = Directory(store, config, events)
    appliance = Appliance(config=config, store=store, directory=directory, events=events)
    attach_monitoring(appliance)
    appliance.admin_auth = AdminAuth(config)
    attach_google(appliance)
    appliance.bottle_app = create_app(appliance)
    appliance.tokens = PhoneTokens(store)
    appliance.threads.append(TokenUseRecorder(appliance.tokens))
    access = AccessControl(appliance.bottle_app, config, appliance.tokens)
    appliance.notifier = Notifier(config, events, store,
                                  appliance_url=lambda: appliance.base_url)
    appliance.threads.append(appliance.notifier)
    on_start, on_finish = request_hooks(appliance)
    on_finish += [appliance.notifier.record_request, log_access]
    appliance.middleware = RequestMiddleware(ErrorBoundary(access), on_finish=on_finish,
                                             on_start=on_start)
    appliance.wsgi = appliance.middleware
    appliance.bind_port(config.server.port)
    return appliance
