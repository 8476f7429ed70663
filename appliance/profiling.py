"""Profiling: the slow-request log, a whole-process stack sampler and a synthetic load.

cProfile sees only the thread that starts it, so ``sample_stacks`` reads every
thread's stack with ``sys._current_frames()`` at a fixed interval instead and
counts identical stacks. ``profile_load`` runs requests through the WSGI app in
this thread, where cProfile does see everything.
"""

from __future__ import annotations

import cProfile
import io
import logging
import os
import pstats
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TextIO
from wsgiref.util import setup_testing_defaults

if TYPE_CHECKING:
    from appliance.config import Config
    from appliance.runtime import Appliance
    from appliance.web.middleware import RequestRecord

logger = logging.getLogger(__name__)

# Deep recursion would make one stack line unreadable, and the innermost frames
# are the ones that tell where time goes.
MAX_STACK_DEPTH = 64

# Innermost frames of a thread that waits for work: worker pools, the metrics and
# sync loops and waitress's event loop. Their samples are counted as idle rather
# than listed, so the stacks doing work come first.
IDLE_FRAMES = frozenset({
    "threading.py:Condition.wait", "threading.py:Event.wait", "threading.py:Thread.join",
    "wasyncore.py:poll", "wasyncore.py:poll2", "selectors.py:EpollSelector.select",
    "selectors.py:PollSelector.select", "selectors.py:SelectSelector.select",
})


class SlowRequestLog:
    """Log requests slower than a threshold with their query and render time.

    Route handlers put ``{"query_s": ..., "render_s": ...}`` into
    ``environ["appliance.timing"]``; whatever the request spent elsewhere is
    reported as ``other_ms``.
    """

    def __init__(self, threshold_ms: float) -> None:
        self.threshold_s = threshold_ms / 1000

    def on_finish(self, record: "RequestRecord") -> None:
        """Log the request at WARNING when it took longer than the threshold."""
        # /debug/profile takes as long as the sampling run it was asked for.
        if record.duration_s < self.threshold_s or record.route.startswith("/debug/"):
            return
        timing = record.environ.get("appliance.timing") or {}
        query_s = float(timing.get("query_s") or 0.0)
        render_s = float(timing.get("render_s") or 0.0)
        logger.warning("slow request", extra={
            "method": record.method, "route": record.route, "status": record.status,
            "duration_ms": round(record.duration_s * 1000, 1),
            "query_ms": round(query_s * 1000, 1),
            "render_ms": round(render_s * 1000, 1),
            "other_ms": round(max(0.0, record.duration_s - query_s - render_s) * 1000, 1),
            "threshold_ms": round(self.threshold_s * 1000, 1),
        })


@dataclass
class StackProfile:
    """Stacks seen by the sampler, each counted once per sample it appeared in."""

    seconds: float
    interval_s: float
    samples: int = 0
    idle: int = 0
    stacks: Counter = field(default_factory=Counter)

    def top_functions(self, limit: int) -> list[tuple[str, int, int]]:
        """Return (function, self samples, total samples) for the busiest functions."""
        own: Counter = Counter()
        total: Counter = Counter()
        for (_, frames), count in self.stacks.items():
            if frames:
                own[frames[-1]] += count
            for name in set(frames):
                total[name] += count
        ranked = sorted(total, key=lambda name: (-own[name], -total[name], name))
        return [(name, own[name], total[name]) for name in ranked[:limit]]


def frame_label(frame: FrameType) -> str:
    """Name a frame as ``file.py:function``, with the folder left out."""
    code = frame.f_code
    return f"{os.path.basename(code.co_filename)}:{code.co_qualname}"


def _stack_of(frame: FrameType | None) -> tuple[str, ...]:
    labels: list[str] = []
    while frame is not None and len(labels) < MAX_STACK_DEPTH:
        labels.append(frame_label(frame))
        frame = frame.f_back
    labels.reverse()
    return tuple(labels)


def sample_stacks(seconds: float, interval_s: float,
                  stop: threading.Event | None = None) -> StackProfile:
    """Sample every thread's stack for ``seconds``, one sample every ``interval_s``.

    The calling thread is left out, since it would only show the sampler itself,
    and stacks that end in a wait only add to the idle count.
    """
    profile = StackProfile(seconds=seconds, interval_s=interval_s)
    own_id = threading.get_ident()
    deadline = time.monotonic() + seconds
    stop = stop or threading.Event()
    while time.monotonic() < deadline and not stop.is_set():
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for thread_id, frame in sys._current_frames().items():
            if thread_id == own_id:
                continue
            stack = _stack_of(frame)
            if stack and stack[-1] in IDLE_FRAMES:
                profile.idle += 1
                continue
            profile.stacks[(names.get(thread_id, str(thread_id)), stack)] += 1
        profile.samples += 1
        stop.wait(interval_s)
    return profile


def render_stack_profile(profile: StackProfile, top: int = 30) -> str:
    """Render a sampling run as text: the hottest stacks, then the busiest functions.

    The stack lines use the collapsed format (``thread;outer;...;inner count``)
    that flame graph tools and speedscope read.
    """
    lines = [f"# {profile.samples} samples of every thread over {profile.seconds:g} s, "
             f"one every {profile.interval_s * 1000:g} ms; {profile.idle} thread samples "
             "were idle waits and are left out",
             "", "# hottest stacks (collapsed: thread;outer;...;inner samples)"]
    for (thread, frames), count in profile.stacks.most_common(top):
        lines.append(f"{';'.join((thread,) + frames)} {count}")
    lines += ["", "# busiest functions (self samples, total samples, function)"]
    for name, own, total in profile.top_functions(top):
        lines.append(f"{own:8d} {total:8d}  {name}")
    return "\n".join(lines) + "\n"


class ProfileBusy(Exception):
    """Another sampling run is going on."""


class Sampler:
    """Allow one sampling run at a time and log each run."""

    def __init__(self, interval_s: float, max_seconds: int) -> None:
        self.interval_s = interval_s
        self.max_seconds = max_seconds
        self._lock = threading.Lock()

    @property
    def is_running(self) -> bool:
        return self._lock.locked()

    def run(self, seconds: float, requested_by: str) -> StackProfile:
        """Sample for ``seconds``; raise ProfileBusy when a run is already going."""
        if not self._lock.acquire(blocking=False):
            raise ProfileBusy()
        try:
            logger.info("profile started", extra={"seconds": seconds,
                                                  "requested_by": requested_by})
            profile = sample_stacks(seconds, self.interval_s)
            logger.info("profile finished", extra={"samples": profile.samples})
            return profile
        finally:
            self._lock.release()


# -- synthetic load -------------------------------------------------------------

# A Cisco phone's request headers, so the load takes the same path as a phone.
PHONE_HEADERS = {"HTTP_X_CISCOIPPHONEMODELNAME": "CP-8845",
                 "HTTP_ACCEPT": "x-CiscoIPPhone/*;version=1.0, text/xml"}


# One phone session after another: the menu, browsing by letter, the three
# searches, a second page and a caller-ID lookup.
DEFAULT_LOAD_PATHS = (
    "/directory", "/directory/browse", "/directory/browse?group=A",
    "/directory/search/name?q=an", "/directory/search/number?q=555",
    "/directory/search/keypad?q=26", "/directory/browse?group=M&page=2",
    "/lookup?number=5550100",
)


def call_app(wsgi: Callable, path: str, headers: dict[str, str]) -> int:
    """Send one GET request through a WSGI app in this thread; return its status."""
    route, _, query = path.partition("?")
    environ: dict = {"REQUEST_METHOD": "GET", "PATH_INFO": route, "QUERY_STRING": query,
                     "REMOTE_ADDR": "127.0.0.1", **headers}
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status: str, response_headers: list, exc_info=None) -> None:
        captured["status"] = int(status.split(" ", 1)[0])

    body = wsgi(environ, start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return captured.get("status", 0)


@dataclass
class LoadResult:
    """Counts, time and cProfile statistics of one synthetic load."""

    requests: int
    elapsed_s: float
    statuses: Counter
    profiler: cProfile.Profile


def profile_load(appliance: "Appliance", paths: Sequence[str], requests: int) -> LoadResult:
    """Send ``requests`` GET requests round-robin over ``paths`` under cProfile."""
    statuses: Counter = Counter()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    try:
        for index in range(requests):
            statuses[call_app(appliance.wsgi, paths[index % len(paths)], PHONE_HEADERS)] += 1
    finally:
        profiler.disable()
    elapsed_s = time.perf_counter() - started
    return LoadResult(requests, elapsed_s, statuses, profiler)


def run_profile(config: "Config", requests: int, paths: Sequence[str], top: int,
                out: TextIO) -> None:
    """Build the appliance from ``config``, run the load under cProfile and print
    the report.

    The per-client rate limit is turned off for the run, because every request
    comes from one address.
    """
    from appliance.config import load_config
    from appliance.runtime import build_appliance

    config = load_config(config.path, overrides={("phones", "rate_limit_per_second"): "0"})
    appliance = build_appliance(config)
    try:
        result = profile_load(appliance, paths, requests)
    finally:
        appliance.stop()
    out.write(render_load_report(result, paths, top))


def render_load_report(result: LoadResult, paths: Iterable[str], top: int) -> str:
    """Render the load's summary and its top functions by own time and total time."""
    rate = result.requests / result.elapsed_s if result.elapsed_s else 0.0
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(result.statuses.items()))
    lines = [f"{result.requests} requests in {result.elapsed_s:.2f} s under cProfile "
             f"({rate:.0f} per second, with the per-client rate limit off; cProfile "
             "itself adds roughly half again to the time)",
             f"paths: {', '.join(paths)}", f"statuses: {statuses}", ""]
    for order, heading in (("tottime", "by own time"), ("cumulative", "by total time")):
        buffer = io.StringIO()
        stats = pstats.Stats(result.profiler, stream=buffer)
        stats.sort_stats(order).print_stats(top)
        lines += [f"## top {top} functions {heading}", _trim_stats(buffer.getvalue()), ""]
    return "\n".join(lines)


def _trim_stats(text: str) -> str:
    """Keep the table of a pstats report and drop its header lines."""
    kept = text.split("\n")
    for index, line in enumerate(kept):
        if line.lstrip().startswith("ncalls"):
            return "\n".join(kept[index:]).rstrip()
    return text.rstrip()
