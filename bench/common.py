"""Helpers the benchmark scripts share: generated contacts, configs, servers, memory.

Nothing here sends traffic anywhere but 127.0.0.1, and every wait has a deadline.
"""

from __future__ import annotations

import csv
import datetime
import http.client
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0

# Names and companies of generated contacts. Family names take a syllable suffix
# as well, so 25,000 contacts spread over thousands of distinct names, as in a
# real company directory, rather than a handful of very large groups.
GIVEN = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia",
         "Leslie", "Renée", "Søren", "Zoë", "Łukasz", "Íñigo", "Margaret", "John", "Hedy",
         "Mary", "James", "Olivia", "Noah", "Emma", "Liam", "Sophia", "Lucas", "Mia",
         "Mateo", "Amelia", "Elijah", "Aiko", "Chen", "Priya", "Omar", "Fatima", "Kwame",
         "Ingrid", "Pierre", "Giulia", "Jakub", "Anna", "Thomas", "Sarah", "David", "Laura",
         "Michael", "Julia", "Daniel", "Hannah", "Peter"]
FAMILY_STEMS = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen",
                "Thompson", "Perlman", "Lamport", "Müller", "Kierkegaard", "O'Brien",
                "Nowak", "Ibáñez", "Hamilton", "McCarthy", "Lamarr", "Smith", "Johnson",
                "Williams", "Brown", "Garcia", "Miller", "Davis", "Martinez", "Anderson",
                "Taylor", "Moore", "Jackson", "Martin", "Lee", "Walker", "Young", "King",
                "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Carter", "Mitchell",
                "Roberts", "Evans", "Turner", "Collins", "Stewart", "Morris", "Murphy"]
FAMILY_ENDINGS = ["", "", "", "son", "er", "ley", "ford", "ton", "wood", "field", "berg",
                  "stein", "mann", "ski", "ová", "ez", "ini", "sen", "dóttir", "ing"]
COMPANIES = ["Northwind Traders", "Contoso Ltd", "Fabrikam", "Tailspin Toys", "Litware",
             "Harbour & Finch Ltd", "Adventure Works", "Wide World Importers", "", "", ""]
PHONE_LABELS = ["Work", "Mobile", "Home", "Main", "Work Fax"]

KEYPAD = {letter: digit for digit, letters in
          {"2": "abc", "3": "def", "4": "ghi", "5": "jkl", "6": "mno", "7": "pqrs",
           "8": "tuv", "9": "wxyz"}.items() for letter in letters}


@dataclass(frozen=True)
class GeneratedContact:
    """One made-up contact: names, company and (label, number) pairs."""

    given: str
    family: str
    company: str
    numbers: tuple[tuple[str, str], ...]


def _number(rng: random.Random, index: int) -> str:
    """Return a fictional number in one of the ways people type them."""
    area = 200 + index % 700
    line = f"{index % 10_000:04d}"
    style = rng.randrange(6)
    if style == 0:
        return f"+1 {area}-555-{line}"
    if style == 1:
        return f"({area}) 555-{line} ext. {index % 900 + 100}"
    if style == 2:
        return f"+44 20 7946 {line}"
    if style == 3:
        return f"{area}.555.{line}"
    if style == 4:
        return f"+49 30 {index % 900 + 100} {line}"
    return f"+1{area}555{line}"


def generate_contacts(count: int, seed: int = 11) -> list[GeneratedContact]:
    """Return ``count`` made-up contacts, the same ones for the same seed."""
    rng = random.Random(seed)
    contacts = []
    for index in range(count):
        family = rng.choice(FAMILY_STEMS) + rng.choice(FAMILY_ENDINGS)
        numbers = [(rng.choice(PHONE_LABELS), _number(rng, index))]
        for extra in range(rng.choice((0, 0, 1, 1, 2))):
            numbers.append((rng.choice(PHONE_LABELS), _number(rng, index * 7 + extra + 1)))
        contacts.append(GeneratedContact(rng.choice(GIVEN), family, rng.choice(COMPANIES),
                                         tuple(numbers)))
    return contacts


def write_contacts_csv(path: Path, contacts: list[GeneratedContact]) -> None:
    """Write contacts in the current Google Contacts CSV layout."""
    columns = max(len(contact.numbers) for contact in contacts)
    header = ["First Name", "Last Name", "Organization Name", "Labels"]
    for column in range(1, columns + 1):
        header += [f"Phone {column} - Label", f"Phone {column} - Value"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for contact in contacts:
            row = [contact.given, contact.family, contact.company, "* myContacts"]
            for label, number in contact.numbers:
                row += [label, number]
            writer.writerow(row)


def write_contacts_vcard(path: Path, contacts: list[GeneratedContact]) -> None:
    """Write contacts as vCard 3.0, one card each."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        for contact in contacts:
            lines = ["BEGIN:VCARD", "VERSION:3.0",
                     f"N:{contact.family};{contact.given};;;",
                     f"FN:{contact.given} {contact.family}"]
            if contact.company:
                lines.append(f"ORG:{contact.company}")
            for label, number in contact.numbers:
                kind = {"Mobile": "CELL", "Home": "HOME", "Work Fax": "FAX"}.get(label, "WORK")
                lines.append(f"TEL;TYPE={kind}:{number}")
            lines.append("END:VCARD")
            handle.write("\r\n".join(lines) + "\r\n")


def keypad_digits(text: str) -> str:
    """Return the keypad digits that spell the ASCII letters of ``text``."""
    return "".join(KEYPAD.get(letter, "") for letter in text.lower())


# -- machine and processes -----------------------------------------------------------


def describe_machine() -> str:
    """Return one line naming the CPU, core count, memory, OS and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024 ** 3)
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def today() -> str:
    return datetime.date.today().isoformat()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_environment() -> dict[str, str]:
    """Return the environment for appliance subprocesses: the repo on PYTHONPATH."""
    return {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8"}


def read_rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Return a memory field of /proc/PID/status (VmRSS now, VmHWM the peak) in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} missing from /proc/{pid}/status")


@dataclass
class Finished:
    """A finished subprocess: exit status, wall time, peak RSS and its output."""

    returncode: int
    wall_s: float
    peak_rss_bytes: int
    stdout: str
    stderr: str


def run_measured(command: list[str], timeout_s: float, cwd: Path = ROOT) -> Finished:
    """Run ``command`` and return its wall time and peak resident memory.

    The peak is the kernel's own account of that one child (``wait4`` rusage
    ru_maxrss), so it covers the whole run, not samples of it.
    """
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr, \
            open(os.devnull, "rb") as stdin:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=child_environment(), stdin=stdin,
                                   stdout=stdout, stderr=stderr)
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                process.returncode = -9
                raise RuntimeError(f"{' '.join(command[:4])} ... ran longer than {timeout_s} s")
            time.sleep(0.005)
        wall_s = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        return Finished(process.returncode, wall_s, usage.ru_maxrss * 1024,
                        stdout.read().decode("utf-8", "replace"),
                        stderr.read().decode("utf-8", "replace"))


def http_get(port: int, path: str, headers: dict[str, str] | None = None,
             timeout_s: float = 10.0) -> tuple[int, bytes]:
    """Return the status and body of GET ``path`` on 127.0.0.1."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class ServerProcess:
    """A server subprocess on 127.0.0.1 and where its output goes."""

    process: subprocess.Popen
    port: int
    output_path: Path

    def rss_bytes(self) -> int:
        return read_rss_bytes(self.process.pid)

    def wait_ready(self, path: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Poll ``path`` until it returns 200, against a deadline."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.output_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server exited with {self.process.returncode}: {tail}")
            try:
                if http_get(self.port, path, timeout_s=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} not ready within {timeout_s} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_process(command: list[str], port: int, output_path: Path) -> ServerProcess:
    """Start a server command with its standard output and error going to a file."""
    with open(output_path, "ab") as output, open(os.devnull, "rb") as stdin:
        process = subprocess.Popen(command, cwd=ROOT, env=child_environment(), stdin=stdin,
                                   stdout=output, stderr=subprocess.STDOUT)
    return ServerProcess(process, port, output_path)


def appliance_config(workdir: Path, port: int, extra: str = "") -> Path:
    """Write a config for a benchmark server in ``workdir`` and return its path.

    The load sends far more requests than a person could, so the per-client rate
    limit is raised out of the way, but it still runs on every request. Every
    other setting, logging and metrics included, keeps its default.
    """
    config = workdir / f"config-{port}.ini"
    config.write_text(
        f"[server]\nhost = 127.0.0.1\nport = {port}\n"
        f"public_base_url = http://127.0.0.1:{port}\n"
        f"[storage]\ndata_dir = {workdir / 'data'}\n"
        f"[logging]\ndir = {workdir / 'logs'}\n"
        "[phones]\nrate_limit_per_second = 1000000\nrate_limit_burst = 1000000\n"
        + extra, encoding="utf-8")
    return config


def python() -> str:
    return sys.executable
