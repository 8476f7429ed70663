"""Load test: many phones browsing and searching, Prometheus scraping, slow clients.

Starts ``python -m appliance serve`` on 127.0.0.1 with generated contacts, then runs
client threads for a fixed time. Each client has its own loopback source address
(127.0.0.2, 127.0.0.3, ...), as each phone has its own IP, and mixes directory
browsing, name, number and keypad searches and ``/metrics`` scrapes. Like a phone,
a client keeps a connection for a few requests and then opens a new one. Meanwhile
a set of slow connections sends a request header line by line, a few seconds
apart, and never finishes, so they hold connection slots the whole time.

Prints requests per second, latency percentiles, errors, the server's resident
memory and how many slow connections were still open at the end. Exits 1 when a
request failed or memory grew by ``--max-growth-mib`` or more. Linux only, because
it binds 127.0.0.x source addresses.

    .venv/bin/python bench/load.py                      # 200 clients, 60 s, 100 slow
    .venv/bin/python bench/load.py --clients 20 --seconds 10
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024

GIVEN = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia",
         "Leslie", "Renée", "Søren", "Zoë", "Łukasz", "Íñigo", "Margaret", "John", "Hedy"]
FAMILY = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen",
          "Thompson", "Perlman", "Lamport", "Müller", "Kierkegaard", "O'Brien", "Nowak",
          "Ibáñez", "Hamilton", "McCarthy", "Lamarr", "Smith & Sons"]
KEYPAD = {letter: digit for digit, letters in
          {"2": "abc", "3": "def", "4": "ghi", "5": "jkl", "6": "mno", "7": "pqrs",
           "8": "tuv", "9": "wxyz"}.items() for letter in letters}

# Share of each kind of request in the mix.
REQUEST_MIX = [("menu", 10), ("browse", 30), ("name", 25), ("number", 15), ("keypad", 10),
               ("metrics", 10)]
MAX_ERRORS_KEPT = 20


# -- the server ----------------------------------------------------------------------


def write_contacts_csv(path: Path, count: int, seed: int = 11) -> None:
    """Write ``count`` made-up contacts in the current Google Contacts CSV layout."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["First Name", "Last Name", "Organization Name", "Labels",
                         "Phone 1 - Label", "Phone 1 - Value", "Phone 2 - Label",
                         "Phone 2 - Value"])
        for index in range(count):
            writer.writerow([rng.choice(GIVEN), f"{rng.choice(FAMILY)} {index}",
                             "Example Ltd", "* myContacts", "Work",
                             f"+1 202 555 01{index % 100:02d}", "Mobile",
                             f"+1 312 555 01{(index * 7) % 100:02d}"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_bytes(self) -> int:
        """Return the server's resident memory from /proc."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS missing from /proc status")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(workdir: Path, contacts: int, threads: int = 8) -> ServerProcess:
    """Import ``contacts`` generated contacts and serve them on a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "load.ini"
    config.write_text(
        "[server]\nhost = 127.0.0.1\n"
        f"port = {port}\nthreads = {threads}\npublic_base_url = http://127.0.0.1:{port}\n"
        f"[storage]\ndata_dir = {workdir / 'data'}\n"
        f"[logging]\ndir = {workdir / 'logs'}\nconsole = no\n"
        # Every simulated phone pages without pause, far faster than a person can,
        # so the per-client limit is raised; it still runs for every request.
        "[phones]\nrate_limit_per_second = 100000\nrate_limit_burst = 100000\n",
        encoding="utf-8")
    environment = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    csv_path = workdir / "contacts.csv"
    write_contacts_csv(csv_path, contacts)
    subprocess.run([sys.executable, "-m", "appliance", "import", "--config", str(config),
                    str(csv_path)], cwd=ROOT, env=environment, check=True,
                   capture_output=True, timeout=300)
    log_path = workdir / "serve.out"
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(config)],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    server = ServerProcess(process, port, log_path)
    _wait_ready(server)
    return server


def _wait_ready(server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}: "
                               f"{server.log_path.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=2)
            connection.request("GET", "/directory")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready within {timeout_s} s")


# -- phone clients ------------------------------------------------------------------


@dataclass
class ClientStats:
    latencies_s: list[float] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0


def request_path(kind: str, rng: random.Random) -> str:
    """Return a path of the given kind with random but realistic parameters."""
    if kind == "menu":
        return "/directory?" + urlencode({"locale": "English_United_States",
                                          "name": f"SEP{rng.randrange(16**12):012X}"})
    if kind == "browse":
        group = rng.choice("ABCDEFGHIJKLMNOPRSTZ")
        if rng.random() < 0.5:
            return "/directory/browse?" + urlencode({"group": group})
        return "/directory/browse?" + urlencode({"group": group, "page": rng.randint(1, 3)})
    if kind == "name":
        word = rng.choice(GIVEN + FAMILY)
        return "/directory/search/name?" + urlencode({"q": word[:rng.randint(2, 5)]})
    if kind == "number":
        return "/directory/search/number?" + urlencode({"q": f"555 01{rng.randrange(100):02d}"})
    if kind == "keypad":
        word = rng.choice(GIVEN + FAMILY).lower()
        digits = "".join(KEYPAD.get(letter, "") for letter in word[:rng.randint(2, 4)])
        return "/directory/search/keypad?" + urlencode({"q": digits or "2"})
    return "/metrics"


class PhoneClient(threading.Thread):
    """Send requests from one source address until ``stop`` is set."""

    def __init__(self, number: int, port: int, stop: threading.Event,
                 measuring: threading.Event) -> None:
        super().__init__(name=f"phone-{number}", daemon=True)
        self.source = f"127.0.{(number + 2) // 256}.{(number + 2) % 256}"
        self.port = port
        self.stop = stop
        self.measuring = measuring
        self.rng = random.Random(number)
        self.stats = ClientStats()
        self._kinds = [kind for kind, weight in REQUEST_MIX for _ in range(weight)]

    def run(self) -> None:
        connection, uses_left = None, 0
        while not self.stop.is_set():
            if connection is None or uses_left == 0:
                if connection is not None:
                    connection.close()
                connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=30, source_address=(self.source, 0))
                uses_left = self.rng.randint(1, 8)
            kind = self.rng.choice(self._kinds)
            ok, detail, elapsed_s = self._fetch(connection, kind)
            uses_left -= 1
            if not ok:
                connection.close()
                connection = None
            if self.measuring.is_set():
                self._record(kind, ok, detail, elapsed_s)
        if connection is not None:
            connection.close()

    def _fetch(self, connection: http.client.HTTPConnection,
               kind: str) -> tuple[bool, str, float]:
        path = request_path(kind, self.rng)
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers={
                "X-CiscoIPPhoneModelName": "CP-8845", "Accept-Charset": "utf-8"})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            return False, f"{path}: {type(error).__name__}: {error}", 0.0
        elapsed_s = time.perf_counter() - started
        if response.status != 200 or not body:
            return False, f"{path}: HTTP {response.status}", elapsed_s
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
        return True, "", elapsed_s

    def _record(self, kind: str, ok: bool, detail: str, elapsed_s: float) -> None:
        stats = self.stats
        if ok:
            stats.latencies_s.append(elapsed_s)
            stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
            return
        stats.error_count += 1
        if len(stats.errors) < MAX_ERRORS_KEPT:
            stats.errors.append(detail)


# -- slow connections ---------------------------------------------------------------


class SlowConnections:
    """Connections that send a request header line every few seconds and never end it."""

    def __init__(self, port: int, count: int, interval_s: float = 5.0) -> None:
        self.port = port
        self.count = count
        self.interval_s = interval_s
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)

    def open(self) -> None:
        for number in range(self.count):
            connection = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            connection.sendall(f"GET /directory?slow={number} HTTP/1.1\r\n".encode())
            self.sockets.append(connection)
        self._thread.start()

    def _trickle(self) -> None:
        line = 0
        while not self._stop.wait(self.interval_s):
            line += 1
            for connection in self.sockets:
                try:
                    connection.sendall(f"X-Slow-{line}: y\r\n".encode())
                except OSError:
                    pass  # counted as closed by still_open

    def still_open(self) -> int:
        """Count connections the server has not closed (no EOF or error on read)."""
        open_count = 0
        for connection in self.sockets:
            connection.setblocking(False)
            try:
                is_open = connection.recv(1) != b""
            except BlockingIOError:
                is_open = True
            except OSError:
                is_open = False
            open_count += is_open
        return open_count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)
        for connection in self.sockets:
            connection.close()


# -- one run --------------------------------------------------------------------------


@dataclass
class LoadResult:
    clients: int
    seconds: float
    requests: int
    errors: int
    error_samples: list[str]
    by_kind: dict[str, int]
    latency_ms: dict[str, float]
    rss_start_mib: float
    rss_baseline_mib: float
    rss_end_mib: float
    rss_max_mib: float
    slow_opened: int
    slow_still_open: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_end_mib - self.rss_baseline_mib


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_load(server: ServerProcess, clients: int, seconds: float, warmup_s: float,
             slow: int) -> LoadResult:
    """Drive ``server`` with ``clients`` phones for ``seconds`` after a warm-up.

    Memory growth is measured from the end of the warm-up, when caches, thread
    stacks and connection buffers have been allocated, to the end of the run.
    """
    rss_start = server.rss_bytes()
    slow_connections = SlowConnections(server.port, slow)
    slow_connections.open()
    stop, measuring = threading.Event(), threading.Event()
    phones = [PhoneClient(number, server.port, stop, measuring) for number in range(clients)]
    for phone in phones:
        phone.start()

    stop.wait(warmup_s)
    rss_baseline = server.rss_bytes()
    rss_max = rss_baseline
    measuring.set()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        stop.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        rss_max = max(rss_max, server.rss_bytes())
    measuring.clear()
    elapsed_s = time.monotonic() - started
    stop.set()
    for phone in phones:
        phone.join(timeout=40)
    rss_end = server.rss_bytes()
    slow_still_open = slow_connections.still_open()
    slow_connections.close()
    return _summarise(phones, clients, elapsed_s, rss_start, rss_baseline, rss_end,
                      max(rss_max, rss_end), slow, slow_still_open)


def _summarise(phones: list[PhoneClient], clients: int, elapsed_s: float, rss_start: int,
               rss_baseline: int, rss_end: int, rss_max: int, slow: int,
               slow_still_open: int) -> LoadResult:
    latencies = [value for phone in phones for value in phone.stats.latencies_s]
    by_kind: dict[str, int] = {}
    for phone in phones:
        for kind, count in phone.stats.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + count
    errors = [error for phone in phones for error in phone.stats.errors][:MAX_ERRORS_KEPT]
    return LoadResult(
        clients=clients, seconds=elapsed_s, requests=len(latencies),
        errors=sum(phone.stats.error_count for phone in phones), error_samples=errors,
        by_kind=by_kind,
        latency_ms={name: percentile(latencies, fraction) * 1000
                    for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99),
                                           ("max", 1.0))},
        rss_start_mib=rss_start / MIB, rss_baseline_mib=rss_baseline / MIB,
        rss_end_mib=rss_end / MIB, rss_max_mib=rss_max / MIB,
        slow_opened=slow, slow_still_open=slow_still_open)


def render_report(result: LoadResult) -> str:
    """Render a run's figures as plain text."""
    latency = result.latency_ms
    mix = ", ".join(f"{kind} {count}" for kind, count in sorted(result.by_kind.items()))
    lines = [
        f"clients               {result.clients} for {result.seconds:.1f} s",
        f"requests              {result.requests} ({result.requests_per_s:.0f}/s): {mix}",
        f"errors                {result.errors}",
        f"latency ms            p50 {latency['p50']:.1f}  p95 {latency['p95']:.1f}  "
        f"p99 {latency['p99']:.1f}  max {latency['max']:.1f}",
        f"server RSS MiB        start {result.rss_start_mib:.1f}  after warm-up "
        f"{result.rss_baseline_mib:.1f}  end {result.rss_end_mib:.1f}  max "
        f"{result.rss_max_mib:.1f}",
        f"RSS growth MiB        {result.rss_growth_mib:+.1f} (end minus after warm-up)",
        f"slow connections      {result.slow_still_open} of {result.slow_opened} still open "
        "at the end",
    ]
    lines += [f"error: {sample}" for sample in result.error_samples]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent phone clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--slow", type=int, default=100, help="slow connections held open")
    parser.add_argument("--contacts", type=int, default=2000, help="contacts in the store")
    parser.add_argument("--threads", type=int, default=8, help="server worker threads")
    parser.add_argument("--max-growth-mib", type=float, default=10.0,
                        help="fail when resident memory grows by this much or more")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the config, data and logs (default: a temp folder)")
    args = parser.parse_args(argv)

    import tempfile

    with tempfile.TemporaryDirectory(prefix="phonebook-load-") as temporary:
        workdir = args.workdir or Path(temporary)
        server = start_server(workdir, args.contacts, args.threads)
        try:
            result = run_load(server, args.clients, args.seconds, args.warmup, args.slow)
        finally:
            server.stop()
    print(f"contacts              {args.contacts}, server threads {args.threads}")
    print(render_report(result))
    failed = result.errors > 0 or result.rss_growth_mib >= args.max_growth_mib
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
