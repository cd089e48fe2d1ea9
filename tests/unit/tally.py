"""A small projection for the projection and projector tests: running totals per key."""

from __future__ import annotations

from typing import Any

from bicameral import Envelope, Event, Projection, View
from bicameral.envelope import NewEvent
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend
from bicameral.readstore.memory import MemoryReadStore

__all__ = ["Added", "Noted", "Removed", "fold_once", "log_of", "read_model", "tally"]


class Added(Event, name="tally.Added"):
    key: str
    n: int


class Removed(Event, name="tally.Removed"):
    key: str


class Noted(Event, name="tally.Noted"):
    """An event the projection does not handle."""

    text: str


tally = Projection("tally", collections={"totals": ["parity"], "journal": []})


@tally.on(Added)
async def added(event: Added, view: View, env: Envelope) -> None:
    doc = await view.get("totals", event.key) or {"key": event.key, "total": 0, "count": 0}
    doc["total"] += event.n
    doc["count"] += 1
    doc["parity"] = doc["total"] % 2
    view.put("totals", event.key, doc)
    await _journal(view, env)


@tally.on(Removed)
async def removed(event: Removed, view: View, env: Envelope) -> None:
    view.delete("totals", event.key)
    await _journal(view, env)


async def _journal(view: View, env: Envelope) -> None:
    journal = await view.get("journal", "all") or {"positions": []}
    journal["positions"].append(env.position)
    view.put("journal", "all", journal)


async def log_of(events: list[Event], service: str = "tally") -> list[Envelope]:
    """Returns the envelopes of ``events`` appended one by one, each to its key's stream."""
    store = MemoryEventStore(service)
    for event in events:
        stream = f"tally-{getattr(event, 'key', 'notes')}"
        await store.append([StreamAppend(stream, None, [NewEvent.of(event)])])
    return await store.read_all(0, len(events) + 1)


async def fold_once(log: list[Envelope]) -> MemoryReadStore:
    """Returns a read store holding the fold of the whole log in one batch."""
    store = MemoryReadStore()
    view = View(tally, store)
    await tally.fold(log, view)
    assert await store.commit(
        tally.checkpoint("tally"), 0, log[-1].position if log else 0, view.changes
    )
    return store


async def read_model(store: Any) -> dict[str, Any]:
    """Returns every collection of the tally projection, and its checkpoint."""
    found: dict[str, Any] = {c: await store.all(tally.table(c)) for c in tally.collections}
    found["checkpoint"] = await store.checkpoint(tally.checkpoint("tally"))
    return found
