"""Reading a log an older release wrote: v1 events upcast to v2 wherever the log is read.

The same facts are stored twice, once as release 1 stored them (``StockAdded.v1``, raw rows)
and once as release 2 stores them; release 2's code, with its upcaster, must find the same
aggregate state, fold the same read model and send the same reaction commands from both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bicameral import MessageContext, NewEvent, Principal, RuleViolation, StreamAppend
from bicameral.aggregate import Repository
from bicameral.cli.main import app as cli
from bicameral.errors import ConfigurationError
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.projection import projection_position
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.transport.sqlite import SqliteTransport
from tests.evolving_app import Bin, TakeStock, release2, v1_payload, v2_payload

APP = "tests.evolving_app:release2"
CLERK = MessageContext(principal=Principal("clerk", frozenset({"staff"})))
FACTS = [("A", 5), ("B", 2), ("A", 3), ("C", 7), ("B", 1)]


def settings_in(folder: Path) -> Settings:
    return Settings.load(environ={}, data_dir=folder, app=APP)


async def write_log(
    settings: Settings, payload: Callable[[str, int], dict[str, Any]], type_name: str
) -> None:
    """Writes FACTS into the warehouse's log as an older (or the current) release stored them."""
    path = settings.data_dir / "warehouse" / "events.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteEventStore("warehouse", str(path))
    await store.start()
    try:
        for sku, units in FACTS:
            version = await store.stream_version(f"bin-{sku}")
            new = NewEvent(type_name, payload(sku, units), {"correlation_id": f"c-{sku}"})
            await store.append([StreamAppend(f"bin-{sku}", version, [new])])
    finally:
        await store.close()


async def settled(node: Node) -> None:
    """Returns once the read model, the relay and the ledger's reactions are caught up."""
    warehouse, ledger = node.runtime("warehouse"), node.runtime("ledger")
    for _ in range(400):
        head = await warehouse.events.head()
        bins = await projection_position(
            warehouse.reads, "bins.v1:warehouse", node.settings.partitions
        )
        (runner,) = ledger.reaction_runners()
        reacted = await ledger.reads.checkpoint(runner.checkpoint_name)
        if head and bins >= head and reacted >= len(FACTS):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the node did not catch up")


async def observe(settings: Settings) -> dict[str, Any]:
    """Runs release 2 over the log; returns its aggregates, read model, reactions and wire."""
    node = Node(settings, release2(), ROLES)
    await node.start()
    try:
        await settled(node)
        warehouse, ledger = node.runtime("warehouse"), node.runtime("ledger")
        repo = Repository(Bin, warehouse.events, warehouse.service.registry)
        bins = {}
        for sku in "ABC":
            found = await repo.get(sku)
            bins[sku] = (found.version, found.units, found.added)
        read_model = await warehouse.reads.all("bins_v1_bins")
        with pytest.raises(RuleViolation):
            await warehouse.commands.dispatch(TakeStock(sku="A", units=9), CLERK)
        await warehouse.commands.dispatch(TakeStock(sku="A", units=8), CLERK)
        noted = [(e.type, e.subject, e.data) for e in await ledger.events.read_all()]
    finally:
        await node.stop()
    transport = SqliteTransport(str(settings.data_dir / "transport.db"))
    await transport.start()
    try:
        sub = await transport.subscribe("warehouse", "probe", 0)
        wire = await sub.fetch(100, 1.0)
        await sub.close()
    finally:
        await transport.close()
    return {
        "bins": bins,
        "read_model": read_model,
        "noted": noted,
        "wire": [(e.type, e.data) for e in wire if "StockAdded" in e.type],
        "stored_types": {e.metadata.get("stored_type") for e in wire},
    }


async def test_a_v1_log_reads_like_a_v2_log(tmp_path: Path) -> None:
    old, new = settings_in(tmp_path / "v1"), settings_in(tmp_path / "v2")
    await write_log(old, v1_payload, "warehouse.StockAdded.v1")
    await write_log(new, v2_payload, "warehouse.StockAdded.v2")
    from_v1, from_v2 = await observe(old), await observe(new)
    assert (
        from_v1["bins"]
        == from_v2["bins"]
        == {
            "A": (2, 8, [(5, "each"), (3, "each")]),
            "B": (2, 3, [(2, "each"), (1, "each")]),
            "C": (1, 7, [(7, "each")]),
        }
    )
    assert from_v1["read_model"] == from_v2["read_model"]
    assert dict(from_v1["read_model"])["A"] == {"sku": "A", "units": 8, "adds": 2}
    assert from_v1["noted"] == from_v2["noted"]
    assert [(sku, data["units"]) for _, sku, data in from_v1["noted"]] == [
        (f"entry-{sku}", units) for sku, units in FACTS
    ]
    # The relay publishes the current version; the stored one stays in ``storedtype``.
    assert from_v1["wire"] == from_v2["wire"]
    assert {t for t, _ in from_v1["wire"]} == {"warehouse.StockAdded.v2"}
    assert from_v1["stored_types"] == {"warehouse.StockAdded.v1", None}
    assert from_v2["stored_types"] == {None}


def test_a_v0_without_upcaster_fails_the_check_naming_the_type(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "data")
    asyncio.run(write_log(settings, v1_payload, "warehouse.StockAdded.v1"))
    asyncio.run(write_log(settings, lambda sku, n: {"sku": sku, "n": n}, "warehouse.StockAdded.v0"))
    args = ["check", "--service", "warehouse", "--data-dir", str(settings.data_dir), "--app", APP]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "warehouse.StockAdded.v0" in result.stderr
    assert "no upcaster from warehouse.StockAdded.v0 to v1" in result.stderr
    assert "warehouse.StockAdded.v1" not in result.stderr.replace("v0 to v1", "")
    assert "Traceback" not in result.output


async def test_a_node_refuses_to_start_on_a_version_it_cannot_upcast(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "data")
    await write_log(settings, lambda sku, n: {"sku": sku, "n": n}, "warehouse.StockAdded.v0")
    node = Node(settings, release2(), ROLES)
    try:
        with pytest.raises(ConfigurationError, match=r"warehouse\.StockAdded\.v0 \(no upcaster"):
            await node.start()
    finally:
        await node.stop()


def test_a_readable_log_passes_the_check(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "data")
    asyncio.run(write_log(settings, v1_payload, "warehouse.StockAdded.v1"))
    args = ["check", "--service", "warehouse", "--data-dir", str(settings.data_dir), "--app", APP]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout


def test_events_tail_shows_the_current_type_and_the_stored_one(tmp_path: Path) -> None:
    settings = settings_in(tmp_path / "data")
    asyncio.run(write_log(settings, v1_payload, "warehouse.StockAdded.v1"))
    args = ["events", "tail", "--service", "warehouse", "--data-dir", str(settings.data_dir)]
    result = CliRunner().invoke(cli, [*args, "--app", APP])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(FACTS)
    assert all("warehouse.StockAdded.v2" in line for line in lines)
    assert all(line.endswith("(stored as warehouse.StockAdded.v1)") for line in lines)
