"""Projections: pure folding of events into documents through a View."""

from __future__ import annotations

import pytest

from bicameral import ConfigurationError, Event, Projection, View
from bicameral.projection import source_of
from bicameral.readstore.memory import MemoryReadStore
from tests.unit.tally import Added, Noted, Removed, fold_once, log_of, read_model, tally


class Shipped(Event, name="shipping.Shipped"):
    key: str


class Local(Event):
    key: str


async def test_folding_applies_each_handler_in_order() -> None:
    log = await log_of([Added(key="a", n=2), Added(key="b", n=1), Added(key="a", n=3)])
    model = await read_model(await fold_once(log))
    assert model["totals"] == [
        ("a", {"key": "a", "total": 5, "count": 2, "parity": 1}),
        ("b", {"key": "b", "total": 1, "count": 1, "parity": 1}),
    ]
    assert model["journal"] == [("all", {"positions": [1, 2, 3]})]
    assert model["checkpoint"] == 3


async def test_events_without_a_handler_are_skipped() -> None:
    log = await log_of([Noted(text="hi"), Added(key="a", n=1)])
    model = await read_model(await fold_once(log))
    assert model["journal"] == [("all", {"positions": [2]})]


async def test_a_delete_in_a_batch_removes_the_document() -> None:
    log = await log_of([Added(key="a", n=1), Removed(key="a"), Added(key="b", n=2)])
    model = await read_model(await fold_once(log))
    assert [key for key, _ in model["totals"]] == ["b"]


async def test_a_view_reads_its_own_batch_writes_over_the_store() -> None:
    store = MemoryReadStore()
    table = tally.table("totals")
    cp = tally.checkpoint("tally")
    old = {"parity": 0, "total": 2}
    gone = {"parity": 0, "total": 4}
    assert await store.commit(cp, 0, 1, {(table, "old"): old, (table, "gone"): gone})
    view = View(tally, store)
    assert await view.get("totals", "old") == old
    view.put("totals", "new", {"parity": 0, "total": 0})
    view.put("totals", "old", {"parity": 1, "total": 3})
    view.delete("totals", "gone")
    assert await view.get("totals", "gone") is None
    assert await view.find("totals", "parity", 0) == [{"parity": 0, "total": 0}]
    assert await view.find("totals", "parity", 1) == [{"parity": 1, "total": 3}]
    assert await store.get(table, "gone") == gone, "nothing is written before the commit"


async def test_a_document_read_from_a_view_is_a_copy() -> None:
    view = View(tally, MemoryReadStore())
    view.put("totals", "a", {"total": 1})
    doc = await view.get("totals", "a")
    assert doc is not None
    doc["total"] = 99
    assert await view.get("totals", "a") == {"total": 1}


async def test_a_view_refuses_a_collection_the_projection_does_not_declare() -> None:
    view = View(tally, MemoryReadStore())
    with pytest.raises(ConfigurationError):
        view.put("elsewhere", "a", {})
    with pytest.raises(ConfigurationError):
        await view.get("elsewhere", "a")


def test_an_event_type_may_have_one_handler_per_projection() -> None:
    projection = Projection("p", collections={"c": []})
    projection.on(Added)(lambda event, view: None)
    with pytest.raises(ConfigurationError):
        projection.on(Added)(lambda event, view: None)


def test_the_source_of_an_event_is_its_name_before_the_first_dot() -> None:
    assert source_of(Shipped, "orders") == "shipping"
    assert source_of(Local, "orders") == "orders"


def test_a_projection_lists_the_services_it_folds() -> None:
    projection = Projection("p", collections={"c": []})
    projection.on(Shipped)(lambda event, view: None)
    projection.on(Local)(lambda event, view: None)
    projection.on(Noted, source="archive")(lambda event, view: None)
    assert projection.sources("orders") == ["archive", "orders", "shipping"]


def test_the_services_a_projection_folds_include_handlers_added_later() -> None:
    projection = Projection("p", collections={"c": []})
    projection.on(Local)(lambda event, view: None)
    renamed = projection.renamed("q")
    assert projection.sources("orders") == ["orders"]
    assert renamed.sources("orders") == ["orders"]
    projection.on(Shipped)(lambda event, view: None)
    assert projection.sources("orders") == ["orders", "shipping"]
    assert renamed.sources("orders") == ["orders", "shipping"]
    assert projection.sources("billing") == ["billing", "shipping"]


def test_stored_names_carry_the_projection_version() -> None:
    projection = Projection("p", collections={"c": []}, version=3)
    assert projection.table("c") == "p_v3_c"
    assert projection.checkpoint("orders") == "p.v3:orders"


async def test_sync_and_async_handlers_both_fold() -> None:
    projection = Projection("p", collections={"c": []})

    @projection.on(Added)
    def sync(event: Added, view: View) -> None:
        view.put("c", event.key, {"n": event.n})

    @projection.on(Removed)
    async def later(event: Removed, view: View) -> None:
        view.put("c", event.key, {"n": 0})

    view = View(projection, MemoryReadStore())
    await projection.fold(await log_of([Added(key="a", n=1), Removed(key="b")]), view)
    assert dict(view.changes) == {("p_v1_c", "a"): {"n": 1}, ("p_v1_c", "b"): {"n": 0}}
