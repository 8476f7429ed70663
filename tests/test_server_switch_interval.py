"""The server shortens the GIL switch interval while it serves and restores it."""

from __future__ import annotations

import sys
import urllib.request

import pytest

from appliance.server import GIL_SWITCH_INTERVAL_S, Server


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture
def default_interval():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield 0.005
    sys.setswitchinterval(previous)


def get_status(server: Server) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as response:
        return response.status


def test_server_sets_interval_while_serving(default_interval):
    server = Server(hello, "127.0.0.1", 0, threads=2, grace_s=1)
    server.start_in_thread()
    try:
        assert get_status(server) == 200
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    finally:
        server.close()


def test_server_restores_interval_after_stop(default_interval):
    server = Server(hello, "127.0.0.1", 0, threads=2, grace_s=1)
    server.start_in_thread()
    get_status(server)
    server.close()
    assert sys.getswitchinterval() == pytest.approx(default_interval)
