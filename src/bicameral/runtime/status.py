"""Checkpoints, heads, lag, owners and parked events of every projection, relay and reaction
runner of a Node.

A partitioned projection is reported once as a whole (at the position all its partitions have
passed, owned by the workers holding its partitions) and, if asked, once per partition, with
the worker holding that partition's lease. Relays and reaction runners are reported with the
copy holding their lease. The owner is empty when no live process holds the lease. A
projection's live version comes first; a version being built beside it follows, with its
progress in ``state``. ``parked``
counts the events waiting in parked sequences (``bicameral dlq list``): of the projection (or
partition), or of the reactions a runner runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bicameral import versions
from bicameral.envelope import Envelope
from bicameral.parking import ParkedSequence
from bicameral.projection import Projection, partition_checkpoints
from bicameral.runtime.node import Node, ServiceRuntime
from bicameral.versions import Catalog, Progress, State, Version
from bicameral.workers.partitions import partition_of
from bicameral.workers.relay import CHECKPOINT as RELAY_CHECKPOINT

__all__ = [
    "RebuildStatus",
    "WorkerStatus",
    "command_side_status",
    "projection_status",
    "rebuild_status",
]


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
    state: str = ""
    """For a projection version as a whole: ``live``, or ``building 42%, ETA 1m 3s``."""

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
    state: str = "",
) -> WorkerStatus:
    head = await (rt.events.head() if source == rt.name else rt.transport.head(source))
    lag_seconds = 0.0
    if head > position:
        nxt = await _next_event(node, rt, source, position)
        if nxt is not None:
            lag_seconds = max(0.0, (datetime.now(UTC) - nxt.time).total_seconds())
    return WorkerStatus(rt.name, name, source, position, head, lag_seconds, owner, parked, state)


async def _parked(rt: ServiceRuntime) -> list[ParkedSequence]:
    return [s for s in await rt.reads.parked() if s.service == rt.name]


def _shown(catalog: Catalog, projection: Projection) -> list[Version]:
    """Returns the versions of ``projection`` to report: the live one, then those building
    (or whose build failed since it went live)."""
    name = projection.name
    live = catalog.version(name, catalog.live(name))
    found = [live] if live is not None else []
    if live is None:
        found.append(Version(name, projection.version, projection.code_version, State.LIVE))
    newer = [
        v
        for v in catalog.versions(name)
        if v.state == State.BUILDING or (v.state == State.FAILED and v.number > found[0].number)
    ]
    return found + newer


def describe(progress: Progress) -> str:
    """Returns ``building 42%, ETA 1m 3s``."""
    eta = progress.eta
    left = "ETA ?" if eta is None else f"ETA {_duration(eta)}"
    return f"building {progress.fraction:.0%}, {left}"


def _duration(seconds: float) -> str:
    whole = int(seconds + 0.5)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60}s"
    return f"{whole}s"


@dataclass(frozen=True, slots=True)
class RebuildStatus:
    """A version of a projection being built (or just switched), and how far it is."""

    service: str
    version: Version
    live: int
    progress: Progress
    error: str = ""
    """Why the build failed, when this process saw it fail."""
    parked: int = 0
    """Events of the version parked (``bicameral dlq``): the switch waits for them."""

    @property
    def blocked(self) -> bool:
        """Returns True when only parked events keep the version from switching."""
        return (
            self.version.state == State.BUILDING
            and self.parked > 0
            and self.progress.done >= self.progress.total
        )


async def _heads(rt: ServiceRuntime, projection: Projection) -> dict[str, int]:
    return {s: await rt.head(s) for s in projection.sources(rt.name)}


async def rebuild_status(rt: ServiceRuntime, projection: Projection, number: int) -> RebuildStatus:
    """Returns where version ``number`` of ``projection`` is (read now)."""
    heads = await _heads(rt, projection)
    catalog = await versions.read_catalog(rt.reads)
    found = catalog.version(projection.name, number)
    if found is None:
        found = Version(projection.name, number, projection.code_version, State.RETIRED)
    done = versions.progress(catalog, projection, found, heads, rt.partitions)
    consumers = {projection.checkpoint(source, number) for source in heads}
    parked = sum(
        len(s.events)
        for s in await rt.reads.parked()
        if s.service == rt.name and s.consumer in consumers
    )
    return RebuildStatus(rt.name, found, catalog.live(projection.name), done, parked=parked)


async def projection_status(node: Node, partitions: bool = True) -> list[WorkerStatus]:
    """Returns the status of every projection version (live, then building) of every service,
    and of each of its partitions unless ``partitions`` is False."""
    rows: list[WorkerStatus] = []
    for rt in node.runtimes.values():
        group = f"projector.{rt.name}"
        catalog = await versions.read_catalog(rt.reads)
        owners = await rt.reads.leases(f"partitions/{group}/")
        parked = await _parked(rt)
        for projection in rt.service.projections:
            heads = await _heads(rt, projection)
            for version in _shown(catalog, projection):
                state = "live"
                if version.state == State.FAILED:
                    state = f"building failed after position {version.failed_at}"
                elif version.state == State.BUILDING:
                    progress = versions.progress(catalog, projection, version, heads, rt.partitions)
                    state = describe(progress)
                for source in heads:
                    base = projection.checkpoint(source, version.number)
                    mine = [s for s in parked if s.consumer == base]
                    names = partition_checkpoints(base, rt.partitions)
                    parts = [
                        (
                            name,
                            catalog.checkpoints.get(name, 0),
                            owners.get(f"partitions/{group}/{name}", ""),
                            sum(
                                len(s.events)
                                for s in mine
                                if len(names) == 1 or partition_of(s.key, len(names)) == index
                            ),
                        )
                        for index, name in enumerate(names)
                    ]
                    if len(parts) == 1:
                        _, at, owner, count = parts[0]
                        rows.append(await _status(node, rt, base, source, at, owner, count, state))
                        continue
                    owner = ",".join(sorted({o for _, _, o, _ in parts if o}))
                    position = min(p for _, p, _, _ in parts)
                    count = sum(c for *_, c in parts)
                    rows.append(
                        await _status(node, rt, base, source, position, owner, count, state)
                    )
                    if partitions:
                        for name, at, own, count in parts:
                            rows.append(await _status(node, rt, name, source, at, own, count))
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
