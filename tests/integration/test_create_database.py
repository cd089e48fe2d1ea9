"""A missing event store is created only when its URL opts in (``?create_database=true``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bicameral import ConfigurationError
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.runtime.backends import BackendFactory, creates_database
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from shop.inventory.service import inventory


def test_only_true_opts_in_and_other_values_are_refused() -> None:
    assert creates_database("sqlite:///x.db?create_database=true")
    assert not creates_database("sqlite:///x.db?create_database=false")
    assert not creates_database("sqlite:///x.db")
    with pytest.raises(ConfigurationError, match="true or false"):
        creates_database("sqlite:///x.db?create_database=later")


async def test_a_missing_sqlite_event_store_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "inventory" / "events.db"
    store = BackendFactory().event_store("inventory", f"sqlite:///{path}")
    with pytest.raises(ConfigurationError, match=re.escape(f"event store {path} does not exist")):
        await store.start()
    assert not path.exists()
    assert not path.parent.exists(), "not even its folder was made"


async def test_a_missing_sqlite_event_store_is_made_when_the_url_opts_in(tmp_path: Path) -> None:
    path = tmp_path / "inventory" / "events.db"
    store = BackendFactory().event_store("inventory", f"sqlite:///{path}?create_database=true")
    await store.start()
    try:
        assert path.is_file()
        assert await store.head() == 0
    finally:
        await store.close()
    again = BackendFactory().event_store("inventory", f"sqlite:///{path}")
    await again.start()  # an existing store needs no opting in
    await again.close()


async def test_an_adapter_made_in_code_creates_its_file(tmp_path: Path) -> None:
    store = SqliteEventStore("inventory", str(tmp_path / "events.db"))
    await store.start()
    await store.close()
    assert (tmp_path / "events.db").is_file()


async def test_the_embedded_defaults_opt_in(settings: Settings) -> None:
    node = Node(settings, [inventory], ROLES)
    await node.start()
    await node.stop()
    assert (settings.data_dir / "inventory" / "events.db").is_file()


async def test_a_node_naming_a_missing_store_without_opting_in_fails_to_start(
    tmp_path: Path,
) -> None:
    settings = Settings.load(
        environ={}, data_dir=tmp_path, events_url="sqlite:///{data_dir}/{service}/log.db"
    )
    node = Node(settings, [inventory], ROLES)
    with pytest.raises(ConfigurationError, match=r"log\.db does not exist"):
        await node.start()
    await node.stop()
    assert not (tmp_path / "inventory" / "log.db").exists()
