"""A small two-service app in two releases, to test reading a log an older release wrote.

Release 1 stored ``warehouse.StockAdded.v1 {sku, count}``. Release 2 stores
``warehouse.StockAdded.v2 {sku, units, unit}`` and declares the upcaster from v1. The warehouse
folds stock into a ``bins`` read model and refuses to take out more than a bin holds; the
ledger service reacts to every ``StockAdded`` (through the transport) with a ``Note`` command.

``release2()`` is the code under test; ``release2_without_v0()`` is the same code facing a log
that also holds a ``v0`` nobody wrote an upcaster for.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bicameral import (
    PUBLIC,
    Aggregate,
    Command,
    Event,
    Projection,
    Query,
    ReadModel,
    RuleViolation,
    Service,
    View,
)

__all__ = [
    "AddStock",
    "Bin",
    "Noted",
    "StockAdded",
    "TakeStock",
    "release2",
    "v1_payload",
    "v2_payload",
]


class AddStock(Command):
    sku: str
    units: int


class TakeStock(Command):
    sku: str
    units: int


class GetBin(Query):
    sku: str


class StockAdded(Event, name="warehouse.StockAdded", version=2):
    sku: str
    units: int
    unit: str


class StockTaken(Event, name="warehouse.StockTaken"):
    sku: str
    units: int


class Note(Command):
    sku: str
    units: int
    unit: str


class Noted(Event, name="ledger.Noted"):
    sku: str
    units: int
    unit: str


def v1_payload(sku: str, units: int) -> dict[str, Any]:
    """Returns what release 1 stored for ``StockAdded``."""
    return {"sku": sku, "count": units}


def v2_payload(sku: str, units: int) -> dict[str, Any]:
    """Returns what release 2 stores for the same fact."""
    return {"sku": sku, "units": units, "unit": "each"}


class Bin(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.units = 0
        self.added: list[tuple[int, str]] = []

    def apply(self, event: Event) -> None:
        match event:
            case StockAdded(units=units, unit=unit):
                self.units += units
                self.added.append((units, unit))
            case StockTaken(units=units):
                self.units -= units

    def take(self, units: int) -> None:
        if units > self.units:
            raise RuleViolation(f"bin {self.id} holds {self.units}, not {units}")
        self.record(StockTaken(sku=self.id, units=units))


class Entry(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.notes: list[tuple[int, str]] = []

    def apply(self, event: Event) -> None:
        if isinstance(event, Noted):
            self.notes.append((event.units, event.unit))


class BinView(BaseModel):
    sku: str
    units: int
    adds: int


def release2() -> list[Service]:
    """Returns the services of release 2 (StockAdded v2, with the upcaster from v1)."""
    warehouse = Service("warehouse")
    warehouse.events(StockAdded, StockTaken)

    @warehouse.upcaster("warehouse.StockAdded", from_version=1)
    def count_to_units(data: dict[str, Any]) -> dict[str, Any]:
        return {"sku": data["sku"], "units": data["count"], "unit": "each"}

    @warehouse.command(key="sku", policy=PUBLIC)
    def add(cmd: AddStock, bin: Bin) -> None:
        bin.record(StockAdded(sku=cmd.sku, units=cmd.units, unit="each"))

    @warehouse.command(key="sku", policy=PUBLIC)
    def take(cmd: TakeStock, bin: Bin) -> None:
        bin.take(cmd.units)

    bins = Projection("bins", collections={"bins": []})

    @bins.on(StockAdded)
    async def added(event: StockAdded, view: View) -> None:
        doc = await view.get("bins", event.sku) or {"sku": event.sku, "units": 0, "adds": 0}
        view.put(
            "bins", event.sku, {**doc, "units": doc["units"] + event.units, "adds": doc["adds"] + 1}
        )

    @bins.on(StockTaken)
    async def taken(event: StockTaken, view: View) -> None:
        doc = await view.get("bins", event.sku)
        if doc is not None:
            view.put("bins", event.sku, {**doc, "units": doc["units"] - event.units})

    warehouse.projection(bins)

    @warehouse.query(policy=PUBLIC)
    async def get_bin(query: GetBin, reads: ReadModel) -> BinView | None:
        doc = await reads.get("bins", query.sku)
        return None if doc is None else BinView.model_validate(doc)

    ledger = Service("ledger")
    ledger.events(Noted)

    @ledger.on(StockAdded)
    def note(event: StockAdded) -> Note:
        return Note(sku=event.sku, units=event.units, unit=event.unit)

    @ledger.command(key="sku", internal=True, policy=PUBLIC)
    def record(cmd: Note, entry: Entry) -> None:
        entry.record(Noted(sku=cmd.sku, units=cmd.units, unit=cmd.unit))

    return [warehouse, ledger]
