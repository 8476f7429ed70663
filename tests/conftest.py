"""Shared fixtures: configs on temporary folders and real servers on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from appliance.config import Config, load_config
from appliance.runtime import Appliance, build_appliance
from appliance.server import Server, adjustments_from_config

REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def reference_file(name: str) -> Path:
    """Return a file from the shared reference folder, or skip when it is absent."""
    path = REFERENCE_DIR / name
    if not path.exists():
        pytest.skip(f"reference file {path} is not present in this checkout")
    return path


def write_ini(path: Path, sections: dict[str, dict[str, str]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a Config on a fresh data folder; keyword sections override settings."""

    def factory(**sections: dict[str, str]) -> Config:
        merged = {"storage": {"data_dir": str(tmp_path / "data")},
                  "server": {"host": "127.0.0.1", "port": "8080"}}
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        return load_config(write_ini(tmp_path / "config.ini", merged))

    return factory


class RunningAppliance:
    """An appliance served by waitress on a free 127.0.0.1 port."""

    def __init__(self, appliance: Appliance, server: Server) -> None:
        self.appliance = appliance
        self.server = server
        self.base_url = f"http://127.0.0.1:{server.port}"
        self.session = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.base_url + path, **kwargs)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0,
               interval_s: float = 0.02) -> None:
    """Poll ``predicate`` until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


@pytest.fixture
def serve(make_config) -> Iterator[Callable[..., RunningAppliance]]:
    """Start appliances on free ports; each is stopped when the test ends.

    Call with ini sections as keyword arguments, or ``config=`` for a ready Config.
    Without ``public_base_url``, links use 127.0.0.1 and the bound port. ``prepare``
    runs on the built appliance before its threads and its server start.
    """
    running: list[RunningAppliance] = []

    def start(config: Config | None = None,
              prepare: Callable[[Appliance], None] | None = None,
              **sections) -> RunningAppliance:
        server_settings = sections.setdefault("server", {})
        server_settings.setdefault("port", "0")
        server_settings.setdefault("host", "127.0.0.1")
        if config is None:
            config = make_config(**sections)
        appliance = build_appliance(config)
        if prepare is not None:
            prepare(appliance)
        server = Server(appliance.wsgi, "127.0.0.1", config.server.port, threads=4,
                        **adjustments_from_config(config))
        appliance.bind_port(server.port)
        appliance.start_threads()
        server.start_in_thread()
        instance = RunningAppliance(appliance, server)
        running.append(instance)
        wait_until(lambda: _answers(instance))
        return instance

    yield start
    for instance in running:
        instance.server.close()
        instance.appliance.stop()


def _answers(instance: RunningAppliance) -> bool:
    try:
        instance.get("/directory", timeout=1)
    except requests.ConnectionError:
        return False
    return True


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: object) -> bool:
    if host is None or host == "":
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    # An unspecified address (0.0.0.0, ::) is this machine when bound or dialled.
    return address.is_loopback or address.is_unspecified


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that resolves or connects to a host other than this machine.

    Settings left at their defaults point at Google's real endpoints; a test that
    forgets to aim the appliance at the fake Google fails here instead of sending
    traffic off the box. Child processes are not covered.
    """
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise OSError(f"test network guard: lookup of {host!r} refused (loopback only)")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OSError(f"test network guard: connection to {address!r} refused "
                          "(loopback only)")

    def guarded_connect(sock, address):
        check(sock, address)
        return real_connect(sock, address)

    def guarded_connect_ex(sock, address):
        check(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep proxy and appliance variables of the calling shell out of tests."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.startswith("PHONEBOOK_"):
            monkeypatch.delenv(name, raising=False)
