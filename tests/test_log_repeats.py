"""Repeated warnings, such as waitress's task queue depth, are logged once a minute."""

from __future__ import annotations

import io
import json
import logging

import pytest

from appliance.logs import (
    WAITRESS_QUEUE_LOGGER,
    RepeatLimitFilter,
    setup_logging,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_record(depth: int) -> logging.LogRecord:
    return logging.LogRecord(WAITRESS_QUEUE_LOGGER, logging.WARNING, __file__, 1,
                             "Task queue depth is %d", (depth,), None)


@pytest.fixture
def clock():
    return FakeClock()


def test_repeat_filter_passes_first_record(clock):
    assert RepeatLimitFilter(60, clock).filter(make_record(1))


def test_repeat_filter_holds_back_within_interval(clock):
    limit = RepeatLimitFilter(60, clock)
    limit.filter(make_record(1))
    clock.now += 59.9
    assert not limit.filter(make_record(2))


@pytest.mark.parametrize("held_back", [1, 5, 250])
def test_repeat_filter_counts_held_back_records(clock, held_back):
    limit = RepeatLimitFilter(60, clock)
    limit.filter(make_record(1))
    for depth in range(held_back):
        limit.filter(make_record(depth))
    clock.now += 60
    record = make_record(3)
    assert limit.filter(record)
    assert record.repeats_suppressed == held_back


def test_repeat_filter_next_record_has_no_count(clock):
    limit = RepeatLimitFilter(60, clock)
    limit.filter(make_record(1))
    clock.now += 61
    record = make_record(2)
    limit.filter(record)
    assert not hasattr(record, "repeats_suppressed")


@pytest.fixture
def console_logging(make_config):
    stream = io.StringIO()
    setup = setup_logging(make_config(logging={"dir": ""}), console_stream=stream)
    yield stream, setup
    setup.close()


def test_setup_logging_limits_queue_warnings(console_logging):
    stream, _ = console_logging
    queue_logger = logging.getLogger(WAITRESS_QUEUE_LOGGER)
    for depth in range(100):
        queue_logger.warning("Task queue depth is %d", depth)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    queue_lines = [line for line in lines if line["logger"] == WAITRESS_QUEUE_LOGGER]
    assert [line["message"] for line in queue_lines] == ["Task queue depth is 0"]


def test_setup_logging_close_removes_limit(console_logging):
    _, setup = console_logging
    setup.close()
    assert logging.getLogger(WAITRESS_QUEUE_LOGGER).filters == []

