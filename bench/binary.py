"""One-file binary figures: size, cold start to the first 200 from /readyz, idle memory.

Measures dist/phonebook-appliance beside a hello-world Bottle app on waitress that
is built the same way: the same build venv, PyInstaller version and options
(one-file, stripped, the same excludes). Each start gets a new, empty TMPDIR, so
the bootloader unpacks the whole bundle every time, as it does on every real
start. The page cache stays warm: "cold" means a new process and a fresh unpack,
not a disk read. The appliance's data folder is made by one unmeasured start
first, so the measured starts open an existing database, as a restart does.

Start time is from Popen to the first HTTP 200 from /readyz (polled every 2 ms).
Idle memory is VmRSS from /proc of the bootloader and of the Python process it
starts, read after the server has been idle for --idle-seconds.

    bash build/build.sh                  # makes dist/phonebook-appliance and the venv
    .venv/bin/python bench/binary.py     # prints a Markdown table
    nice -n -15 .venv/bin/python bench/binary.py   # on a shared machine, as root
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "work"
BUILD_VENV = WORK / "venv"
HELLO_DIR = WORK / "bench-hello"
MIB = 1024 * 1024
POLL_INTERVAL_S = 0.002
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30

# The smallest app served the way the appliance is: Bottle on waitress, /readyz.
HELLO_SOURCE = '''\
import bottle
import waitress

app = bottle.Bottle()


@app.get("/readyz")
def readyz():
    return "ok"


if __name__ == "__main__":
    import sys

    waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=4, _quiet=True)
'''
# The options that pyinstaller.spec gives the appliance, for the hello-world build.
HELLO_OPTIONS = ["--onefile", "--strip", "--noupx", "--exclude-module", "tkinter",
                 "--exclude-module", "_tkinter", "--exclude-module", "tests"]


@dataclass
class Measurement:
    """Figures of one binary."""

    name: str
    size_bytes: int
    unpacked_bytes: int
    starts_ms: list[float]
    parent_rss_bytes: int
    child_rss_bytes: int

    @property
    def median_start_ms(self) -> float:
        return statistics.median(self.starts_ms)


def build_hello() -> Path:
    """Build the hello-world one-file binary with the build venv, unless it is current."""
    pyinstaller = BUILD_VENV / "bin" / "pyinstaller"
    if not pyinstaller.exists():
        sys.exit(f"error: {pyinstaller} not found: run build/build.sh first")
    HELLO_DIR.mkdir(parents=True, exist_ok=True)
    source = HELLO_DIR / "hello.py"
    binary = HELLO_DIR / "dist" / "hello"
    fingerprint = hashlib.sha256((HELLO_SOURCE + " ".join(HELLO_OPTIONS)).encode()).hexdigest()
    stamp = HELLO_DIR / "stamp"
    if binary.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return binary

    source.write_text(HELLO_SOURCE, encoding="utf-8")
    subprocess.run([str(pyinstaller), "--noconfirm", "--log-level", "WARN", *HELLO_OPTIONS,
                    "--name", "hello", "--distpath", str(HELLO_DIR / "dist"),
                    "--workpath", str(HELLO_DIR / "work"), "--specpath", str(HELLO_DIR),
                    str(source)], check=True)
    stamp.write_text(fingerprint)
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_status(port: int, path: str) -> int | None:
    """Return the status of GET ``path``, or None while nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def read_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def find_child_pid(parent_pid: int) -> int:
    """Return the PID of the Python process that the one-file bootloader started."""
    children = Path(f"/proc/{parent_pid}/task/{parent_pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one child of the bootloader {parent_pid}, found {children}")
    return int(children[0])


def folder_size_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*")
               if path.is_file() and not path.is_symlink())


class Run:
    """One start of a binary in its own TMPDIR."""

    def __init__(self, command: list[str], port: int, workdir: Path) -> None:
        self.port = port
        self.tmpdir = Path(tempfile.mkdtemp(prefix="tmpdir-", dir=workdir))
        environment = {**os.environ, "TMPDIR": str(self.tmpdir)}
        self.started = time.perf_counter()
        self.process = subprocess.Popen(command, cwd=workdir, env=environment,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready_ms(self) -> float:
        deadline = self.started + START_TIMEOUT_S
        while time.perf_counter() < deadline:
            if get_status(self.port, "/readyz") == 200:
                return (time.perf_counter() - self.started) * 1000
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode} before it was ready")
            time.sleep(POLL_INTERVAL_S)
        raise RuntimeError(f"no 200 from /readyz within {START_TIMEOUT_S} s")

    def stop(self, expected_status: int) -> None:
        """Stop with SIGTERM and check the exit status and that no _MEI folder stays."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=STOP_TIMEOUT_S)
        leftovers = list(self.tmpdir.glob("_MEI*"))
        if status != expected_status or leftovers:
            raise RuntimeError(f"stop: exit status {status}, left behind {leftovers}")


def measure(name: str, binary: Path, make_command, workdir: Path, runs: int,
            idle_s: float, warm_up: bool, stop_status: int) -> Measurement:
    """Start ``binary`` ``runs`` times and read memory and unpacked size on the last.

    With ``warm_up``, one unmeasured start comes first (it creates the database).
    """
    starts_ms: list[float] = []
    parent_rss = child_rss = unpacked = 0
    for index in range(runs + (1 if warm_up else 0)):
        port = free_port()
        run = Run(make_command(port), port, workdir)
        try:
            elapsed_ms = run.wait_ready_ms()
            if warm_up and index == 0:
                continue
            starts_ms.append(elapsed_ms)
            if len(starts_ms) == runs:
                time.sleep(idle_s)  # memory is read after a quiet spell, as at idle
                parent_rss = read_rss_bytes(run.process.pid)
                child_rss = read_rss_bytes(find_child_pid(run.process.pid))
                unpacked = folder_size_bytes(run.tmpdir)
        finally:
            run.stop(stop_status)
    return Measurement(name, binary.stat().st_size, unpacked, starts_ms, parent_rss, child_rss)


def appliance_command(binary: Path, workdir: Path):
    def command(port: int) -> list[str]:
        config = workdir / f"config-{port}.ini"
        config.write_text(
            f"[server]\nhost = 127.0.0.1\nport = {port}\n"
            f"[storage]\ndata_dir = {workdir / 'data'}\n", encoding="utf-8")
        return [str(binary), "serve", "--config", str(config)]
    return command


def render_table(rows: list[Measurement]) -> str:
    lines = [
        "| binary | size | unpacked per start | start to first 200 (ms, each run) "
        "| median | idle RSS: bootloader + Python |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{value:.0f}" for value in row.starts_ms)
        lines.append(
            f"| {row.name} | {row.size_bytes / MIB:.1f} MiB | {row.unpacked_bytes / MIB:.1f} MiB "
            f"| {runs} | **{row.median_start_ms:.0f}** "
            f"| {row.parent_rss_bytes / MIB:.1f} + {row.child_rss_bytes / MIB:.1f} MiB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=ROOT / "dist" / "phonebook-appliance",
                        help="the appliance binary to measure")
    parser.add_argument("--runs", type=int, default=5, help="measured starts per binary")
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="seconds of idle before memory is read")
    args = parser.parse_args(argv)
    if not args.binary.is_file():
        print(f"error: {args.binary} not found: run build/build.sh first", file=sys.stderr)
        return 1

    hello = build_hello()
    with tempfile.TemporaryDirectory(prefix="bench-binary-") as folder:
        workdir = Path(folder)
        rows = [
            measure("phonebook-appliance", args.binary, appliance_command(args.binary, workdir),
                    workdir, args.runs, args.idle_seconds, warm_up=True, stop_status=0),
            measure("hello-world Bottle", hello, lambda port: [str(hello), str(port)],
                    workdir, args.runs, args.idle_seconds, warm_up=False,
                    # waitress installs no SIGTERM handler, so the app dies by the signal.
                    stop_status=-signal.SIGTERM),
        ]
    load_1min = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {platform.platform()}, load average {load_1min:.1f}")
    if load_1min > (os.cpu_count() or 1):
        print("NOTE: the load average was above the CPU count: other work slowed these starts")
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
