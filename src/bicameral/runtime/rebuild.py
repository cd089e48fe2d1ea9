"""Rebuilding a read model beside the live one, from the command line.

``start`` begins a new version of a projection (or finds the one under way). ``build`` then
does the work in this process, when no projector runs for the service; ``watch`` follows the
workers doing it. Both report progress until the version is live, or failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bicameral import versions
from bicameral.errors import ConfigurationError
from bicameral.projection import Projection
from bicameral.runtime.node import Node, ServiceRuntime
from bicameral.runtime.status import RebuildStatus, rebuild_status
from bicameral.service import Service
from bicameral.versions import State, Version
from bicameral.workers.partitions import ProjectorGroup

__all__ = [
    "UnknownProjectionError",
    "build",
    "find_projection",
    "owner_of",
    "start",
    "watch",
    "workers_running",
]

Report = Callable[[RebuildStatus], None]
_EVERY = 0.25
_BATCH = 2000
"""Events a rebuild reads at a time: each partition folds and commits its share of a batch, so
a rebuild, which has a long way to go, reads further ahead than a live projector (500) and
commits its partitions' shares in fewer, larger commits."""


class UnknownProjectionError(ConfigurationError):
    """No service of the app has a projection of that name."""


def owner_of(services: Sequence[Service], name: str, service: str | None = None) -> Service:
    """Returns the service whose projection is called ``name`` (among ``service`` if given).

    Raises UnknownProjectionError naming the known projections when none has it.
    """
    found = [s for s in services if (service is None or s.name == service) and _projection(s, name)]
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(s.name for s in found)
        raise ConfigurationError(f"{name} is a projection of {names}: pick one with --service")
    known = sorted(f"{p.name} ({s.name})" for s in services for p in s.projections)
    raise UnknownProjectionError(
        f"no projection {name!r}; known projections: {', '.join(known) or 'none'}"
    )


def _projection(service: Service, name: str) -> Projection | None:
    return next((p for p in service.projections if p.name == name), None)


def find_projection(node: Node, name: str) -> tuple[ServiceRuntime, Projection]:
    """Returns the runtime and projection called ``name``; UnknownProjectionError otherwise."""
    owner = owner_of([rt.service for rt in node.runtimes.values()], name)
    projection = _projection(owner, name)
    assert projection is not None
    return node.runtime(owner.name), projection


async def start(rt: ServiceRuntime, projection: Projection) -> tuple[Version, bool]:
    """Starts a rebuild of ``projection`` (True) or returns the one under way (False)."""
    return await versions.start_rebuild(rt.reads, projection)


async def workers_running(rt: ServiceRuntime) -> bool:
    """Returns True when a projector of the service is alive (it holds its membership lease)."""
    return bool(await rt.reads.leases(f"members/projector.{rt.name}/"))


async def watch(
    rt: ServiceRuntime, projection: Projection, number: int, report: Report
) -> RebuildStatus:
    """Reports the progress of the workers building version ``number`` until it is live,
    failed, or caught up but for parked events (which only a retry or a skip clears)."""
    while True:
        status = await rebuild_status(rt, projection, number)
        report(status)
        if status.version.state != State.BUILDING or status.blocked:
            return status
        await asyncio.sleep(_EVERY)


async def build(
    rt: ServiceRuntime, projection: Projection, number: int, report: Report
) -> RebuildStatus:
    """Builds version ``number`` in this process until it is live, failed, or caught up but
    for parked events; reports often.

    Folds only the versions being built, as a group of its own, so a projector starting
    meanwhile shares the work without losing any (every commit is a compare-and-set).
    """
    group = ProjectorGroup(
        f"projector.{rt.name}.rebuild",
        rt.reads,
        [(projection, source) for source in projection.sources(rt.name)],
        rt.feed,
        partitions=rt.partitions,
        ttl=rt.lease_ttl,
        batch_size=_BATCH,
        head=rt.head,
        builds_only=True,
        service=rt.name,
    )
    await group.prepare()
    try:
        await group.heartbeat()
        beat = reported = time.monotonic()
        while True:
            moved = await group.step()
            now = time.monotonic()
            if not moved:
                await group.switch_built()
            if not moved or now - reported >= _EVERY:
                status = await rebuild_status(rt, projection, number)
                report(status)
                reported = now
                if status.version.state != State.BUILDING or (status.blocked and not moved):
                    failure = group.failures.get((projection.name, number))
                    if failure is not None:
                        status = replace(status, error=f"{type(failure).__name__}: {failure}")
                    return status
                if not moved:
                    await asyncio.sleep(0.1)
            if now - beat >= group.ttl / 3:
                await group.heartbeat()
                beat = now
    finally:
        await group.leave()
