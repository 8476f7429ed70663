"""Start-up failures of ``serve``: one clear line and a closed store, no traceback."""

from __future__ import annotations

import socket

from appliance.cli import main
from conftest import write_ini


def test_serve_port_in_use_exits_2(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_ini(tmp_path / "config.ini", {
            "server": {"host": "127.0.0.1", "port": str(port)},
            "storage": {"data_dir": str(tmp_path / "data")},
            "logging": {"dir": str(tmp_path / "logs")},
        })
        status = main(["serve", "--config", str(config)])
    error = capsys.readouterr().err
    assert status == 2
    assert f"Cannot listen on 127.0.0.1:{port}" in error
    assert "Another program uses this port" in error
    assert "Traceback" not in error


def test_serve_port_in_use_closes_store(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = write_ini(tmp_path / "config.ini", {
            "server": {"host": "127.0.0.1", "port": str(taken.getsockname()[1])},
            "storage": {"data_dir": str(tmp_path / "data")},
            "logging": {"dir": str(tmp_path / "logs")},
        })
        main(["serve", "--config", str(config)])
    assert sorted(path.name for path in (tmp_path / "data").glob("*.sqlite3*")) == [
        "phonebook.sqlite3"]
