"""Waitress around the appliance's WSGI app, with a graceful stop.

Waitress has no graceful-stop API (waitress 3.0.2), so ``run`` drives waitress's
own event loop one pass at a time. After ``request_stop`` the listening socket is
closed at once, requests already accepted run to the end and their responses are
flushed, and the loop ends when nothing is left or ``grace_s`` has passed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable

from waitress import wasyncore
from waitress.server import create_server

logger = logging.getLogger(__name__)

LOOP_PASS_TIMEOUT_S = 0.2
# How long CPython lets one thread keep the GIL while another waits for it; the
# default is 5 ms. Waitress's event loop thread, which reads requests and hands
# them to worker threads, waits behind workers that render pages. At 1 ms it gets
# its turn sooner: with wrk's 16 connections on 25,000 contacts, p99 of browse
# pages and number searches fell from 37-54 ms to 29-32 ms and throughput rose by
# up to a fifth. 0.25 ms was slower than the default.
GIL_SWITCH_INTERVAL_S = 0.001


def adjustments_from_config(config) -> dict:
    """Return waitress settings from ``[server]``: request and connection limits, proxy.

    Waitress checks idle connections every ``cleanup_interval`` seconds, so that runs
    at a third of the channel timeout to close a stalled one soon after its time is up.
    """
    server = config.server
    adjustments = {
        "max_request_body_size": server.max_request_body_bytes,
        "max_request_header_size": server.max_request_header_bytes,
        "connection_limit": server.connection_limit,
        "channel_timeout": server.channel_timeout_seconds,
        "cleanup_interval": max(1, min(30, server.channel_timeout_seconds // 3)),
    }
    if server.trusted_proxy:
        adjustments.update(trusted_proxy=server.trusted_proxy, trusted_proxy_count=1,
                           trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"})
    return adjustments


class Server:
    """A waitress server bound at construction, so the real port is known at once."""

    def __init__(self, wsgi: Callable, host: str, port: int, threads: int = 8,
                 grace_s: float = 10.0, **adjustments) -> None:
        self._server = create_server(wsgi, host=host, port=port, threads=threads,
                                     clear_untrusted_proxy_headers=True, ident="phonebook",
                                     **adjustments)
        self.host = host
        self.port = self._server.effective_port
        self.grace_s = grace_s
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until ``request_stop``; safe to call from the main thread only once.

        Sets the interpreter's GIL switch interval to GIL_SWITCH_INTERVAL_S while it
        serves and restores the previous one when it returns.
        """
        channels = self._server._map
        deadline = None
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        try:
            while channels:
                if self._stop_requested.is_set():
                    if deadline is None:
                        deadline = time.monotonic() + self.grace_s
                        # Close only the listening socket. The server's own close()
                        # also closes the trigger that worker threads pull to
                        # hand finished responses to this loop.
                        wasyncore.dispatcher.close(self._server)
                    if not self._is_busy() or time.monotonic() > deadline:
                        break
                wasyncore.loop(timeout=LOOP_PASS_TIMEOUT_S, map=channels, use_poll=True,
                               count=1)
        finally:
            wasyncore.close_all(channels)
            self._server.task_dispatcher.shutdown(timeout=self.grace_s)
            sys.setswitchinterval(previous_interval)
            self._stopped.set()

    def _is_busy(self) -> bool:
        """Tell whether a request is queued, running, or has output left to send."""
        dispatcher = self._server.task_dispatcher
        if dispatcher.queue or dispatcher.active_count:
            return True
        for channel in list(self._server._map.values()):
            if getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0):
                return True
        return False

    def request_stop(self) -> None:
        """Ask ``run`` to stop; safe from a signal handler, returns at once."""
        self._stop_requested.set()

    def start_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.run, name="waitress-loop", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the server and wait for ``run`` to return."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=self.grace_s + 5)
