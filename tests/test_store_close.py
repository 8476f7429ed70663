"""Store.close: every connection closed, the WAL folded back into the database file."""

from __future__ import annotations

import threading

from appliance.store import Store


def test_store_close_removes_wal_files(tmp_path):
    store = Store.open(tmp_path)
    store.count_contacts()
    worker = threading.Thread(target=store.count_contacts)
    worker.start()
    worker.join()
    store.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["phonebook.sqlite3"]


def test_store_close_twice_is_harmless(tmp_path):
    store = Store.open(tmp_path)
    store.count_contacts()
    store.close()
    store.close()
    assert (tmp_path / "phonebook.sqlite3").is_file()
