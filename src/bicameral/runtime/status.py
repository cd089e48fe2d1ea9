"""Checkpoints, heads, lag, owners and parked events of every projection, relay and reaction
runner of a Node.

A partitioned projection is reported once as a whole (at the position all its partitions have
passed, owned by the workers holding its partitions) and, if asked, once per partition, with
the worker holding that partition's lease. Relays and reaction runners are reported with the
copy holding their lease. The owner is empty when no live process holds the lease. ``parked``
counts the events waiting in parked sequences (``bicameral dlq list``): of the projection (or
partition), or of the reactions a runner runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bicameral.envelope import Envelope
from bicameral.parking import ParkedSequence
from bicameral.runtime.node import Node, ServiceRuntime
from bicameral.workers.partitions import partition_of
from bicameral.workers.relay import CHECKPOINT as RELAY_CHECKPOINT

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
    owner: str = ""
    parked: int = 0

    @property
    def lag(self) -> int:
        """Returns the number of events not yet handled."""
        return max(0, self.head - self.position)


async def _next_event(node: Node, rt: ServiceRuntime, source: str, after: int) -> Envelope | None:
    origin = node.runtimes.get(source)
    if origin is not None:
        found = await origin.events.read_all(after, 1)
        return found[0] if found else None
    sub = await rt.transport.subscribe(source, f"{rt.name}.status-probe", after)
    try:
        found = await sub.fetch(1, 0.0)
    finally:
        await sub.close()
    return found[0] if found else None


async def _status(
    node: Node,
    rt: ServiceRuntime,
    name: str,
    source: str,
    position: int,
    owner: str = "",
    parked: int = 0,
) -> WorkerStatus:
    head = await (rt.events.head() if source == rt.name else rt.transport.head(source))
    lag_seconds = 0.0
    if head > position:
        nxt = await _next_event(node, rt, source, position)
        if nxt is not None:
            lag_seconds = max(0.0, (datetime.now(UTC) - nxt.time).total_seconds())
    return WorkerStatus(rt.name, name, source, position, head, lag_seconds, owner, parked)


async def _parked(rt: ServiceRuntime) -> list[ParkedSequence]:
    return [s for s in await rt.reads.parked() if s.service == rt.name]


async def projection_status(node: Node, partitions: bool = True) -> list[WorkerStatus]:
    """Returns the status of every projection of every service, and of each of its
    partitions unless ``partitions`` is False."""
    rows: list[WorkerStatus] = []
    for rt in node.runtimes.values():
        group = rt.projector_group()
        checkpoints = await rt.reads.checkpoints()
        owners = await rt.reads.leases(f"partitions/{group.group}/")
        parked = await _parked(rt)
        for base, lane in group.lanes.items():
            source = lane[0].projector.feed.source
            mine = [s for s in parked if s.consumer == base]
            parts = [
                (
                    slot.projector.checkpoint_name,
                    checkpoints.get(slot.projector.checkpoint_name, 0),
                    owners.get(slot.lease, ""),
                    sum(
                        len(s.events) for s in mine if partition_of(s.key, len(lane)) == slot.index
                    ),
                )
                for slot in lane
            ]
            if len(parts) == 1:
                _, position, owner, count = parts[0]
                rows.append(await _status(node, rt, base, source, position, owner, count))
                continue
            owner = ",".join(sorted({o for _, _, o, _ in parts if o}))
            position = min(p for _, p, _, _ in parts)
            count = sum(c for *_, c in parts)
            rows.append(await _status(node, rt, base, source, position, owner, count))
            if partitions:
                for name, position, own, count in parts:
                    rows.append(await _status(node, rt, name, source, position, own, count))
    return rows


async def command_side_status(node: Node) -> list[WorkerStatus]:
    """Returns the status of every relay and reaction runner of every service, with the
    copy holding its lease."""
    rows: list[WorkerStatus] = []
    for rt in node.runtimes.values():
        owners = await rt.reads.leases(rt.relay_lease)
        position = await rt.events.load_checkpoint(RELAY_CHECKPOINT)
        owner = owners.get(rt.relay_lease, "")
        rows.append(await _status(node, rt, RELAY_CHECKPOINT, rt.name, position, owner))
        owners = await rt.reads.leases(rt.reactions_lease(""))
        parked = await _parked(rt)
        for runner in rt.reaction_runners():
            source = runner.feed.source
            position = await rt.reads.checkpoint(runner.checkpoint_name)
            position = position or await rt.events.load_checkpoint(runner.name)
            names = {r.name for rs in runner.by_type.values() for r in rs}
            count = sum(len(s.events) for s in parked if s.consumer in names)
            owner = owners.get(rt.reactions_lease(source), "")
            rows.append(await _status(node, rt, runner.name, source, position, owner, count))
    return rows
