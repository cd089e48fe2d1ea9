"""Checkpoints, heads and lag of every projection, relay and reaction runner of a Node."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bicameral.envelope import Envelope
from bicameral.relay import CHECKPOINT as RELAY_CHECKPOINT
from bicameral.runtime.node import Node, ServiceRuntime

__all__ = ["WorkerStatus", "command_side_status", "projection_status"]


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """Where one worker is: its checkpoint, its source's head, and how far behind it is."""

    service: str
    name: str
    source: str
    position: int
    head: int

    lag_seconds: float = 0.0

    @property
    def lag(self) -> int:
        """Returns the number of events not yet handled."""
        return max(0, self.head - self.position)


async def _next_event(rt: ServiceRuntime, source: str, after: int) -> Envelope | None:
    if source == rt.name:
        found = await rt.events.read_all(after, 1)
        return found[0] if found else None
    sub = await rt.transport.subscribe(source, f"{rt.name}.status-probe", after)
    try:
        found = await sub.fetch(1, 0.0)
    finally:
        await sub.close()
    return found[0] if found else None


async def _status(rt: ServiceRuntime, name: str, source: str, position: int) -> WorkerStatus:
    head = await (rt.events.head() if source == rt.name else rt.transport.head(source))
    lag_seconds = 0.0
    if head > position:
        nxt = await _next_event(rt, source, position)
        if nxt is not None:
            lag_seconds = max(0.0, (datetime.now(UTC) - nxt.time).total_seconds())
    return WorkerStatus(rt.name, name, source, position, head, lag_seconds)


async def projection_status(node: Node) -> list[WorkerStatus]:
    """Returns the status of every projection checkpoint of every service."""
    rows: list[WorkerStatus] = []
    for rt in node.runtimes.values():
        for projection in rt.service.projections:
            for source in projection.sources(rt.name):
                name = projection.checkpoint(source)
                rows.append(await _status(rt, name, source, await rt.reads.checkpoint(name)))
    return rows


async def command_side_status(node: Node) -> list[WorkerStatus]:
    """Returns the status of every relay and reaction runner of every service."""
    rows: list[WorkerStatus] = []
    for rt in node.runtimes.values():
        position = await rt.events.load_checkpoint(RELAY_CHECKPOINT)
        rows.append(await _status(rt, "relay", rt.name, position))
        for source in sorted({r.source for r in rt.service.reactions}):
            name = f"reactions:{source}"
            rows.append(await _status(rt, name, source, await rt.events.load_checkpoint(name)))
    return rows
