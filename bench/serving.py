"""HTTP benchmark: directory pages, searches and /metrics against the ceiling.

For each contact count (1,000, 10,000 and 25,000 by default) it imports that many
generated contacts, then loads these servers on 127.0.0.1 one after the other with
``wrk`` (16 connections, one wrk thread):

- the ceiling: a bare Bottle app on the same waitress settings that returns one
  fixed 3 KB directory page (``bench/servers.py``);
- the appliance with logging and metrics on, as ``python -m appliance serve``
  runs it (JSON access lines to standard output and to access.log, every metric);
- the same appliance with logging and metrics off.

Each kind of request rotates through a list of paths: browse pages found by
walking the browse menus as a phone does, name, number and keypad searches for
names and numbers in the data, and /metrics. Every figure is requests per
second and p50/p99 latency from wrk, and the ratio to the ceiling of the same
contact count. The script also prints the server's resident memory at idle and
its maximum under load, and the time of single /metrics scrapes.

Needs ``wrk`` (Debian package wrk); it installs nothing itself.

    .venv/bin/python -m bench.serving                     # about 9 minutes
    .venv/bin/python -m bench.serving --contacts 1000 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode, urlsplit

from bench.common import (
    MIB,
    GeneratedContact,
    ServerProcess,
    appliance_config,
    child_environment,
    describe_machine,
    free_port,
    generate_contacts,
    http_get,
    keypad_digits,
    python,
    start_process,
    today,
    write_contacts_csv,
)

KINDS = ("browse", "name", "number", "keypad", "metrics")
PHONE_HEADERS = {"X-CiscoIPPhoneModelName": "CP-8845", "Accept-Charset": "utf-8"}
PATHS_PER_KIND = 64
MAX_CRAWL_REQUESTS = 1500
SCRAPES = 200
WRK_MISSING = ("error: wrk not found. Install it with: apt-get install wrk "
               "(the benchmark installs nothing itself).")

# wrk calls request() for every request and done() once at the end. The done()
# line carries exact percentiles from wrk's histogram, in microseconds.
WRK_SCRIPT = """\
local paths = {%(paths)s}
local index = 0
%(headers)s
request = function()
  index = index %% #paths + 1
  return wrk.format("GET", paths[index])
end
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, ' ..
    '"read": %%d, "write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, ' ..
    '"p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(99), latency.max))
end
"""


@dataclass
class WrkResult:
    """One wrk run: throughput, latency and errors."""

    requests: int
    duration_s: float
    bytes: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    max_rss_bytes: int = 0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def bytes_per_request(self) -> float:
        return self.bytes / self.requests if self.requests else 0.0


@dataclass
class Block:
    """Every figure measured at one contact count."""

    contacts: int
    ceiling: WrkResult | None = None
    on: dict[str, WrkResult] = field(default_factory=dict)
    off: dict[str, WrkResult] = field(default_factory=dict)
    idle_rss_bytes: int = 0
    scrape_ms: list[float] = field(default_factory=list)
    metrics_bytes: int = 0


# -- wrk ------------------------------------------------------------------------------


def write_wrk_script(path: Path, paths: list[str], headers: dict[str, str]) -> Path:
    quoted = ", ".join(json.dumps(item) for item in paths)
    header_lines = "\n".join(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}"
                             for name, value in headers.items())
    path.write_text(WRK_SCRIPT % {"paths": quoted, "headers": header_lines},
                    encoding="utf-8")
    return path


def run_wrk(port: int, script: Path, seconds: int, connections: int,
            server: ServerProcess | None = None) -> WrkResult:
    """Run wrk for ``seconds`` and return its figures; sample the server's RSS meanwhile."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", str(script), f"http://127.0.0.1:{port}/"]
    peak = [0]
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.wait(0.25):
            peak[0] = max(peak[0], server.rss_bytes())

    sampler = threading.Thread(target=sample_rss, daemon=True) if server else None
    if sampler:
        sampler.start()
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True,
                                timeout=seconds + 60).stdout
    finally:
        stop.set()
        if sampler:
            sampler.join()
    line = next((text for text in output.splitlines() if text.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {output[-1000:]}")
    figures = json.loads(line[len("WRKJSON "):])
    errors = sum(figures[key] for key in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(requests=figures["requests"], duration_s=figures["duration_us"] / 1e6,
                     bytes=figures["bytes"], errors=errors,
                     p50_ms=figures["p50_us"] / 1000, p99_ms=figures["p99_us"] / 1000,
                     max_ms=figures["max_us"] / 1000, max_rss_bytes=peak[0])


def measure(port: int, script: Path, args: argparse.Namespace,
            server: ServerProcess | None = None) -> WrkResult:
    """Warm up, then measure; the warm-up figures are dropped."""
    if args.warmup > 0:
        run_wrk(port, script, args.warmup, args.connections)
    return run_wrk(port, script, args.seconds, args.connections, server)


# -- paths to load ----------------------------------------------------------------------


def _local_path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def crawl_browse_pages(fetch: Callable[[str], tuple[int, bytes]], rng: random.Random,
                       count: int = PATHS_PER_KIND) -> list[str]:
    """Walk the browse menus as a phone does and return paths of directory pages.

    ``fetch`` returns the status and body of a path. Every menu is followed and
    every page's Next key too, until all pages are found or MAX_CRAWL_REQUESTS
    is spent. A random ``count`` of the pages found is returned.
    """
    queue, pages, seen = ["/directory/browse"], [], set()
    requests = 0
    while queue and requests < MAX_CRAWL_REQUESTS:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        status, body = fetch(path)
        requests += 1
        if status != 200:
            raise RuntimeError(f"GET {path} gave HTTP {status} while walking the menus")
        root = ET.fromstring(body)
        if root.tag == "CiscoIPPhoneMenu":
            queue += [_local_path(item.findtext("URL")) for item in root.iter("MenuItem")]
        elif root.tag == "CiscoIPPhoneDirectory":
            pages.append(path)
            queue += [_local_path(key.findtext("URL")) for key in root.iter("SoftKeyItem")
                      if key.findtext("Name") == "Next"]
    if not pages:
        raise RuntimeError("walking the browse menus found no directory page")
    return rng.sample(pages, min(count, len(pages)))


def load_paths(contacts: list[GeneratedContact], fetch: Callable[[str], tuple[int, bytes]],
               seed: int) -> dict[str, list[str]]:
    """Return the paths each kind of request rotates through."""
    rng = random.Random(seed)
    paths = search_paths(contacts, rng)
    paths["browse"] = crawl_browse_pages(fetch, rng)
    paths["metrics"] = ["/metrics"]
    return paths


def search_paths(contacts: list[GeneratedContact], rng: random.Random,
                 count: int = PATHS_PER_KIND) -> dict[str, list[str]]:
    """Return name, number and keypad search paths for names and numbers in the data."""
    sample = rng.sample(contacts, count)
    names, numbers, keys = [], [], []
    for contact in sample:
        word = rng.choice((contact.given, contact.family))
        query = word[:rng.randint(3, 6)]
        if rng.random() < 0.25:
            query = f"{contact.given[:3]} {contact.family[:3]}"
        names.append(query)
        number = rng.choice(contact.numbers)[1]
        digits = "".join(character for character in number if character.isdigit())
        numbers.append(number if rng.random() < 0.5 else digits[-4:])
        keys.append(keypad_digits(contact.family[:rng.randint(3, 5)]) or "2")
    return {
        "name": [f"/directory/search/name?{urlencode({'q': text})}" for text in names],
        "number": [f"/directory/search/number?{urlencode({'q': text})}" for text in numbers],
        "keypad": [f"/directory/search/keypad?{urlencode({'q': text})}" for text in keys],
    }


# -- servers ------------------------------------------------------------------------------


def prepare_store(workdir: Path, contacts: list[GeneratedContact]) -> None:
    """Import the generated contacts into ``workdir``'s data folder."""
    csv_path = workdir / "contacts.csv"
    write_contacts_csv(csv_path, contacts)
    config = appliance_config(workdir, 8080)
    subprocess.run([python(), "-m", "appliance", "import", "--config", str(config),
                    str(csv_path)], env=child_environment(), check=True,
                   capture_output=True, timeout=600)


def start_server(workdir: Path, kind: str, watching: str = "on") -> ServerProcess:
    port = free_port()
    config = appliance_config(workdir, port)
    command = [python(), "-m", "bench.servers", kind, "--config", str(config),
               "--watching", watching]
    server = start_process(command, port, workdir / f"{kind}-{watching}.out")
    server.wait_ready("/livez" if kind == "appliance" else "/")
    return server


def time_scrapes(port: int, count: int = SCRAPES) -> tuple[list[float], int]:
    """Scrape /metrics ``count`` times, one at a time; return times in ms and the size."""
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        status, body = http_get(port, "/metrics")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"/metrics gave HTTP {status}")
        size = len(body)
    return times, size


def run_block(count: int, workdir: Path, args: argparse.Namespace) -> Block:
    contacts = generate_contacts(count)
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_store(workdir, contacts)
    block = Block(contacts=count)

    ceiling = start_server(workdir, "ceiling")
    try:
        script = write_wrk_script(workdir / "ceiling.lua", ["/directory/browse?group=s"],
                                  PHONE_HEADERS)
        block.ceiling = measure(ceiling.port, script, args, ceiling)
    finally:
        ceiling.stop()
    report(f"{count} contacts: ceiling {block.ceiling.requests_per_s:.0f} req/s")

    paths: dict[str, list[str]] = {}
    for watching in args.watching:
        server = start_server(workdir, "appliance", watching)
        try:
            http_get(server.port, "/directory/browse", PHONE_HEADERS)  # builds the index
            if not paths:
                paths = load_paths(
                    contacts, lambda path: http_get(server.port, path, PHONE_HEADERS), count)
            if watching == "on":
                time.sleep(args.idle_seconds)  # idle on purpose: memory after a quiet spell
                block.idle_rss_bytes = server.rss_bytes()
            results = block.on if watching == "on" else block.off
            for kind in args.kinds:
                headers = {} if kind == "metrics" else PHONE_HEADERS
                script = write_wrk_script(workdir / f"{kind}.lua", paths[kind], headers)
                results[kind] = measure(server.port, script, args, server)
                report(f"{count} contacts: {kind}, watching {watching}: "
                       f"{results[kind].requests_per_s:.0f} req/s, "
                       f"p99 {results[kind].p99_ms:.1f} ms")
            if watching == "on":
                block.scrape_ms, block.metrics_bytes = time_scrapes(server.port)
        finally:
            server.stop()
    return block


def report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- tables ----------------------------------------------------------------------------


def _quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def render_tables(blocks: list[Block], watching: list[str]) -> str:
    lines = ["### Throughput and latency (16 connections)", "",
             "| contacts | request | watching | req/s | share of ceiling | p50 ms | p99 ms "
             "| errors |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for block in blocks:
        ceiling = block.ceiling
        lines.append(f"| {block.contacts:,} | ceiling (fixed 3 KB page) | - "
                     f"| {ceiling.requests_per_s:,.0f} | 100% | {ceiling.p50_ms:.1f} "
                     f"| {ceiling.p99_ms:.1f} | {ceiling.errors} |")
        for state in watching:
            results = block.on if state == "on" else block.off
            for kind, result in results.items():
                share = result.requests_per_s / ceiling.requests_per_s
                lines.append(f"| {block.contacts:,} | {kind} | {state} "
                             f"| {result.requests_per_s:,.0f} | {share:.0%} "
                             f"| {result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.errors} |")
    if set(watching) == {"on", "off"}:
        lines += ["", "### Cost of watching (logging and metrics on versus off)", "",
                  "| contacts | request | on req/s | off req/s | on / off |",
                  "|---:|---|---:|---:|---:|"]
        for block in blocks:
            for kind, on in block.on.items():
                off = block.off.get(kind)
                if off is None:
                    continue
                lines.append(f"| {block.contacts:,} | {kind} | {on.requests_per_s:,.0f} "
                             f"| {off.requests_per_s:,.0f} "
                             f"| {on.requests_per_s / off.requests_per_s:.0%} |")
    if "on" in watching:
        lines += ["", "### Memory and /metrics (watching on)", "",
                  "| contacts | idle RSS | max RSS under load | /metrics body "
                  "| scrape p50 ms | scrape p99 ms |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for block in blocks:
            peak = max((result.max_rss_bytes for result in block.on.values()), default=0)
            scrape = block.scrape_ms or [0.0]
            lines.append(f"| {block.contacts:,} | {block.idle_rss_bytes / MIB:.1f} MiB "
                         f"| {peak / MIB:.1f} MiB | {block.metrics_bytes / 1024:.1f} KiB "
                         f"| {statistics.median(scrape):.1f} | {_quantile(scrape, 0.99):.1f} |")
    return "\n".join(lines)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """Add --contacts, --kinds and --watching, which every request benchmark takes."""
    parser.add_argument("--contacts", default="1000,10000,25000",
                        help="comma-separated contact counts (default 1000,10000,25000)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated requests to send (default {','.join(KINDS)})")
    parser.add_argument("--watching", default="on,off",
                        help="on, off or on,off (default): logging and metrics on or off")


def parse_load_options(parser: argparse.ArgumentParser, argv: list[str] | None,
                       states: tuple[str, ...] = ("on", "off")) -> argparse.Namespace:
    """Parse the arguments and turn the options of add_load_options into lists."""
    args = parser.parse_args(argv)
    args.kinds = [kind for kind in args.kinds.split(",") if kind]
    args.watching = [state for state in args.watching.split(",") if state]
    unknown = ([kind for kind in args.kinds if kind not in KINDS]
               + [state for state in args.watching if state not in states])
    if unknown:
        parser.error(f"unknown --kinds or --watching value: {', '.join(unknown)}")
    try:
        args.contacts = [int(value) for value in args.contacts.split(",")]
    except ValueError:
        parser.error(f"invalid --contacts {args.contacts!r}: expected whole numbers "
                     "separated by commas, such as 1000,25000")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_options(parser)
    # wrk takes whole seconds.
    parser.add_argument("--seconds", type=int, default=10,
                        help="measured seconds per run, a whole number (default 10)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured seconds first, a whole number; 0 skips (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent clients")
    parser.add_argument("--idle-seconds", type=float, default=3.0,
                        help="seconds of idle before idle memory is read")
    parser.add_argument("--workdir", type=Path, help="keep data and logs here")
    args = parse_load_options(parser, argv)
    if args.seconds < 1 or args.warmup < 0:
        parser.error(f"invalid --seconds {args.seconds} or --warmup {args.warmup}: "
                     "expected at least 1 and at least 0 whole seconds")
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as temporary:
        base = args.workdir or Path(temporary)
        blocks = [run_block(count, base / str(count), args) for count in args.contacts]
    print(f"machine: {describe_machine()}")
    print(f"date: {today()}; command: python -m bench.serving {' '.join(argv or sys.argv[1:])}")
    print(f"wrk: 1 thread, {args.connections} connections, {args.warmup:g} s warm-up, "
          f"{args.seconds:g} s measured per row")
    print()
    print(render_tables(blocks, args.watching))
    return 0


if __name__ == "__main__":
    sys.exit(main())
