"""CPU time per request through the whole WSGI stack, in one thread, without waitress.

Builds the appliance in this process on a store of generated contacts and calls
its WSGI app directly, so the figure is the time our code spends on one request:
middleware, access control, routing, search, rendering and, with watching on,
the access log lines and the metrics. It is the thread CPU time of the fastest
of several rounds, so other work on a shared machine moves it far less than it
moves requests per second from wrk (``bench/serving.py``). With watching on,
logging is set up as ``serve`` does (JSON lines to the console, here a file, and
to app.log and access.log). ``--watching`` also takes ``logs`` (logging on,
metrics off) and ``metrics`` (metrics on, logging off), to split the cost.

    .venv/bin/python -m bench.cpu                          # 1,000, 10,000, 25,000
    .venv/bin/python -m bench.cpu --contacts 25000 --kinds browse --profile
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

from bench.common import appliance_config, describe_machine, generate_contacts, today
from bench.servers import remove_watching
from bench.serving import (
    PHONE_HEADERS,
    add_load_options,
    load_paths,
    parse_load_options,
    prepare_store,
)

WARMUP_REQUESTS = 50
ROUNDS = 15


def _environ_headers(headers: dict[str, str]) -> dict[str, str]:
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


class InProcess:
    """One appliance built in this process, with watching on, off, logs or metrics."""

    def __init__(self, workdir: Path, watching: str) -> None:
        from appliance.config import load_config
        from appliance.logs import log_access, setup_logging
        from appliance.runtime import build_appliance

        config = load_config(appliance_config(workdir, 8080))
        self.console = open(workdir / f"console-{watching}.out", "a", encoding="utf-8")
        self.logging = None
        if watching in ("on", "logs"):
            self.logging = setup_logging(config, console_stream=self.console)
        self.appliance = build_appliance(config)
        if watching in ("off", "logs"):
            remove_watching(self.appliance)
        if watching == "logs":
            self.appliance.middleware.on_finish = [log_access]

    def fetch(self, path: str, headers: dict[str, str] = PHONE_HEADERS) -> tuple[int, bytes]:
        from appliance.profiling import call_app

        environ_headers = _environ_headers(headers)
        captured: list[bytes] = []
        status = call_app(_Capture(self.appliance.wsgi, captured), path, environ_headers)
        return status, b"".join(captured)

    def close(self) -> None:
        self.appliance.stop()
        if self.logging is not None:
            self.logging.close()
        self.console.close()


class _Capture:
    """A WSGI wrapper that keeps the body chunks it passes on."""

    def __init__(self, app, chunks: list[bytes]) -> None:
        self.app = app
        self.chunks = chunks

    def __call__(self, environ, start_response):
        body = list(self.app(environ, start_response))
        self.chunks.extend(body)
        return body


def cpu_per_request_us(server: InProcess, paths: list[str], headers: dict[str, str],
                       requests: int) -> float:
    """Return the thread CPU microseconds per request of the fastest of ROUNDS rounds.

    Other work on the machine only ever adds time (cache misses, frequency), so
    the fastest round is the steadiest estimate of the request's own cost.
    """
    from appliance.profiling import call_app

    app, environ_headers = server.appliance.wsgi, _environ_headers(headers)
    for index in range(WARMUP_REQUESTS):
        call_app(app, paths[index % len(paths)], environ_headers)
    rounds = []
    for _ in range(ROUNDS):
        started = time.thread_time()
        for index in range(requests):
            status = call_app(app, paths[index % len(paths)], environ_headers)
            if status != 200:
                raise RuntimeError(f"{paths[index % len(paths)]} gave HTTP {status}")
        rounds.append((time.thread_time() - started) / requests * 1e6)
    return min(rounds)


def profile(server: InProcess, paths: list[str], headers: dict[str, str], requests: int,
            top: int) -> str:
    from appliance.profiling import call_app

    app, environ_headers = server.appliance.wsgi, _environ_headers(headers)
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(requests):
        call_app(app, paths[index % len(paths)], environ_headers)
    profiler.disable()
    stream = _Text()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    return stream.text


class _Text:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


def run(count: int, workdir: Path, args: argparse.Namespace) -> list[tuple]:
    contacts = generate_contacts(count)
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_store(workdir, contacts)
    rows, paths = [], None
    for watching in args.watching:
        server = InProcess(workdir, watching)
        try:
            if paths is None:
                paths = load_paths(contacts, server.fetch, count)
            for kind in args.kinds:
                headers = {} if kind == "metrics" else PHONE_HEADERS
                requests = max(20, args.requests // (10 if kind == "metrics" else 1))
                if args.profile:
                    print(f"## {count} contacts, {kind}, watching {watching}")
                    print(profile(server, paths[kind], headers, requests, args.top))
                    continue
                cpu_us = cpu_per_request_us(server, paths[kind], headers, requests)
                rows.append((count, kind, watching, cpu_us))
                print(f"{count} contacts: {kind}, watching {watching}: {cpu_us:.0f} us",
                      file=sys.stderr, flush=True)
        finally:
            server.close()
    return rows


def render_table(rows: list[tuple], states: list[str]) -> str:
    by_key = {(count, kind, watching): cpu for count, kind, watching, cpu in rows}
    others = [state for state in states if state != "on"]
    lines = ["| contacts | request | CPU per request, watching on | "
             + " | ".join(f"watching {state}" for state in others)
             + (" | on / off |" if "off" in others else " |"),
             "|---:|---|---:|" + "---:|" * len(others) + ("---:|" if "off" in others else "")]
    for count, kind, watching, cpu in rows:
        if watching != "on":
            continue
        cells = [f"{count:,}", kind, f"{cpu:,.0f} µs"]
        cells += [f"{by_key[(count, kind, state)]:,.0f} µs" for state in others]
        if "off" in others:
            cells.append(f"{cpu / by_key[(count, kind, 'off')]:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser)
    parser.add_argument("--requests", type=int, default=300,
                        help=f"requests per round (a tenth for /metrics); {ROUNDS} rounds")
    parser.add_argument("--profile", action="store_true",
                        help="print cProfile tables instead of timing")
    parser.add_argument("--top", type=int, default=30, help="functions per cProfile table")
    parser.add_argument("--workdir", type=Path, help="keep data and logs here")
    args = parse_load_options(parser, argv, ("on", "off", "logs", "metrics"))
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as temporary:
        base = args.workdir or Path(temporary)
        rows = [row for count in args.contacts for row in run(count, base / str(count), args)]
    if args.profile:
        return 0
    print(f"machine: {describe_machine()}")
    print(f"date: {today()}; command: python -m bench.cpu {' '.join(argv or sys.argv[1:])}")
    print()
    print(render_table(rows, args.watching))
    return 0


if __name__ == "__main__":
    sys.exit(main())
