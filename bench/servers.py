"""The servers the HTTP benchmark loads: the appliance, with watching on or off, and the
ceiling.

    python -m bench.servers appliance --config FILE [--watching off]
    python -m bench.servers ceiling --config FILE

``appliance`` with watching on runs exactly ``python -m appliance serve``. With
watching off it builds the same app and then removes what watches requests. It
installs no logging handlers, and the root logger stays at WARNING, so no access
line is made. It drops the request hooks (metrics, health history, notifier,
access log) and the subscribers of the directory's search and page events.

``ceiling`` is a bare Bottle app on the same waitress server class and settings
(threads, limits, timeouts) as the appliance, returning one fixed 3 KB
CiscoIPPhoneDirectory page for every path. It does the least a Bottle app on
waitress can do for a page, so it is the ceiling our pages are compared with.
Like ``serve``, the ceiling and the appliance with watching off log waitress's
task queue warning at most once a minute.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

CEILING_PAGE_BYTES = 3072


def ceiling_page(size: int = CEILING_PAGE_BYTES) -> bytes:
    """Return a CiscoIPPhoneDirectory of as many entries as fit in ``size`` bytes.

    The rest is padded with spaces between elements, so the page is exactly
    ``size`` bytes.
    """
    head = ('<?xml version="1.0" encoding="utf-8"?>\n<CiscoIPPhoneDirectory>\n'
            "<Title>Browse: S</Title>\n<Prompt>96 found, page 1/3</Prompt>\n")
    tail = "</CiscoIPPhoneDirectory>\n"
    body = head
    for index in range(32):
        entry = (f"<DirectoryEntry>\n<Name>Contact {index:02d} (Work)</Name>\n"
                 f"<Telephone>912025550{index:02d}</Telephone>\n</DirectoryEntry>\n")
        if len(body) + len(entry) + len(tail) > size:
            break
        body += entry
    return (body + " " * (size - len(body) - len(tail)) + tail).encode("ascii")


def serve_ceiling(config_path: Path) -> int:
    import bottle

    from appliance.config import load_config
    from appliance.server import Server, adjustments_from_config

    config = load_config(config_path)
    limit_queue_warnings()
    page = ceiling_page()
    app = bottle.Bottle()

    @app.route("/<path:path>")
    @app.route("/")
    def fixed_page(path: str = "") -> bytes:
        bottle.response.content_type = "text/xml; charset=utf-8"
        return page

    server = Server(app, config.server.host, config.server.port,
                    threads=config.server.threads, **adjustments_from_config(config))
    _stop_on_signals(server)
    server.run()
    return 0


def serve_appliance(config_path: Path, watching: bool) -> int:
    if watching:
        from appliance.cli import main

        return main(["serve", "--config", str(config_path)])

    from appliance.config import load_config
    from appliance.runtime import build_appliance
    from appliance.server import Server, adjustments_from_config

    logging.getLogger().setLevel(logging.WARNING)
    limit_queue_warnings()
    config = load_config(config_path)
    appliance = build_appliance(config)
    remove_watching(appliance)
    server = Server(appliance.wsgi, config.server.host, config.server.port,
                    threads=config.server.threads, **adjustments_from_config(config))
    appliance.bind_port(server.port)
    _stop_on_signals(server)
    appliance.start_threads()
    try:
        server.run()
    finally:
        appliance.stop()
    return 0


def limit_queue_warnings() -> None:
    """Log waitress's task queue warning once a minute, as ``serve`` does.

    Without logging set up, Python writes each warning to standard error, and
    waitress warns for about half of all requests under this load.
    """
    from appliance.logs import (
        QUEUE_WARNING_INTERVAL_S,
        WAITRESS_QUEUE_LOGGER,
        RepeatLimitFilter,
    )

    logging.getLogger(WAITRESS_QUEUE_LOGGER).addFilter(
        RepeatLimitFilter(QUEUE_WARNING_INTERVAL_S))


def remove_watching(appliance) -> None:
    """Take the request hooks and the directory's event subscribers off an appliance."""
    from appliance.events import Events

    appliance.middleware.on_start = []
    appliance.middleware.on_finish = []
    # A bus without subscribers: directory.search and directory.page go nowhere.
    appliance.events = Events()
    appliance.directory.events = appliance.events


def _stop_on_signals(server) -> None:
    def handle_signal(signum: int, frame) -> None:
        server.request_stop()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("server", choices=("appliance", "ceiling"))
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--watching", choices=("on", "off"), default="on",
                        help="logging and metrics on (the default) or off")
    args = parser.parse_args(argv)
    if args.server == "ceiling":
        return serve_ceiling(args.config)
    return serve_appliance(args.config, args.watching == "on")


if __name__ == "__main__":
    sys.exit(main())
