"""A short load run: phones, searches and /metrics while slow clients hold connections.

The full run (200 clients for 60 s) is ``bench/load.py``; this one uses fewer clients
for about ten seconds, so it fits in CI, and asserts the same limits.
"""

from __future__ import annotations

import sys

import pytest

from bench.load import render_report, run_load, start_server

CLIENTS = 30
SECONDS = 8.0
WARMUP_S = 2.0
SLOW_CONNECTIONS = 100
MAX_GROWTH_MIB = 10.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="binds 127.0.0.x source addresses, which needs Linux")


@pytest.fixture(scope="module")
def load_result(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("load"), contacts=1000)
    try:
        result = run_load(server, CLIENTS, SECONDS, WARMUP_S, SLOW_CONNECTIONS)
    finally:
        server.stop()
    print(render_report(result))
    return result


def test_load_has_no_errors(load_result):
    assert load_result.errors == 0, load_result.error_samples


def test_load_covers_every_request_kind(load_result):
    assert set(load_result.by_kind) == {"menu", "browse", "name", "number", "keypad",
                                        "metrics"}


def test_load_memory_growth_bounded(load_result):
    assert load_result.rss_growth_mib < MAX_GROWTH_MIB


def test_load_serves_despite_slow_clients(load_result):
    # The slow connections were still held at the end, so every phone request of
    # the run was served while they took up connection slots.
    assert load_result.slow_still_open == SLOW_CONNECTIONS
    assert load_result.requests > 10 * CLIENTS
    assert load_result.latency_ms["max"] < 5000
