"""A Node runs some roles of some services in one process: the one bootstrap place.

Roles: ``command-api``, ``query-api``, ``projector``, ``relay``, ``reactions`` (``saga`` is its
old name, still read, with a warning). ``bicameral up`` runs
every role of every service in one Node; ``bicameral serve`` runs one role of one service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bicameral.bus import Authorizer, CommandBus, QueryBus
from bicameral.consistency import Notifier
from bicameral.errors import BicameralError, ConfigurationError
from bicameral.files import warn_if_shared
from bicameral.parking import ParkedSequence
from bicameral.ports import EventStore, ReadStore, Transport
from bicameral.runtime.auth import authorizer_for
from bicameral.runtime.backends import BackendFactory
from bicameral.runtime.check import refuse_unreadable
from bicameral.runtime.settings import Settings
from bicameral.runtime.tracing import flush_tracing, start_tracing
from bicameral.service import Service
from bicameral.workers.exclusive import Exclusive
from bicameral.workers.feeds import Feed, LogFeed, TransportFeed
from bicameral.workers.meters import CONSUMERS, Head, Meter, Parked
from bicameral.workers.partitions import ProjectorGroup, partition_of, worker_id
from bicameral.workers.projector import Projector
from bicameral.workers.reactions import ReactionRunner
from bicameral.workers.relay import CHECKPOINT as RELAY_CHECKPOINT
from bicameral.workers.relay import Relay
from bicameral.workers.retry import supervise

__all__ = ["OLD_ROLE_NAMES", "ROLES", "Node", "ServiceRuntime", "canonical_roles"]

ROLES = ("command-api", "query-api", "projector", "relay", "reactions")
OLD_ROLE_NAMES = {"saga": "reactions"}
"""Role names of earlier releases, read as their new names."""
log = logging.getLogger("bicameral.node")


def _parked_in(consumer: str, partitions: int, index: int) -> Callable[[ParkedSequence], bool]:
    """Returns whether a parked sequence is ``consumer``'s, in partition ``index``."""
    return lambda s: s.consumer == consumer and partition_of(s.key, partitions) == index


def _parked_by(reactions: frozenset[str]) -> Callable[[ParkedSequence], bool]:
    """Returns whether a parked sequence is one of ``reactions``'."""
    return lambda s: s.consumer in reactions


@dataclass
class ServiceRuntime:
    """One service wired to its backends: its buses and its background workers."""

    service: Service
    events: EventStore
    reads: ReadStore
    transport: Transport
    roles: frozenset[str]
    authorizer: Authorizer | None = None
    notifier: Notifier = field(default_factory=Notifier)
    partitions: int = 1
    lease_ttl: float = 10.0
    worker: str | None = None
    _heads: dict[str, Head] = field(default_factory=dict, init=False, repr=False)
    _parked: Parked | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.commands = CommandBus(
            self.service, self.events, authorizer=self.authorizer, notifier=self.notifier
        )
        self.queries = QueryBus(
            self.service,
            self.reads,
            authorizer=self.authorizer,
            notifier=self.notifier,
            partitions=self.partitions,
        )

    @property
    def name(self) -> str:
        """Returns the service name."""
        return self.service.name

    def feed(self, source: str, consumer: str) -> Feed:
        """Returns a feed of ``source``'s events: the own log, or the transport for others."""
        registry = self.service.registry
        if source == self.name:
            return LogFeed(source, self.events, registry)
        return TransportFeed(source, f"{self.name}.{consumer}", self.transport, registry)

    def head_of(self, source: str) -> Head:
        """Returns how to read the head of ``source``: the own log, or the transport's (the
        same function for every consumer of ``source``, so a scrape reads it once)."""
        if source == self.name:
            return self.events.head
        if source not in self._heads:
            transport = self.transport

            async def head() -> int:
                return await transport.head(source)

            self._heads[source] = head
        return self._heads[source]

    def parked_of(self) -> Parked:
        """Returns how to read this service's parked sequences (one function for all of its
        consumers, so a scrape reads them once)."""
        if self._parked is None:
            reads, service = self.reads, self.name

            async def parked() -> list[ParkedSequence]:
                return [s for s in await reads.parked() if s.service == service]

            self._parked = parked
        return self._parked

    def meter(
        self,
        consumer: str,
        source: str,
        partition: str = "",
        parks: Callable[[ParkedSequence], bool] | None = None,
    ) -> Meter:
        """Returns the meter of one of this service's consumers, exported at ``/metrics``;
        ``parks`` picks the parked sequences it counts as its own."""
        parked = None if parks is None else (self.parked_of(), parks)
        return CONSUMERS.meter(
            self.name, consumer, partition, head=self.head_of(source), parked=parked
        )

    def projector_group(self) -> ProjectorGroup:
        """Returns this process's member of the group folding the service's projections."""
        group = ProjectorGroup(
            f"projector.{self.name}",
            self.reads,
            [
                (projection, source)
                for projection in self.service.projections
                for source in projection.sources(self.name)
            ],
            self.feed,
            partitions=self.partitions,
            ttl=self.lease_ttl,
            worker=self.worker,
            notifier=self.notifier,
            head=self.head,
            service=self.name,
            equip=self._equip,
        )
        return group

    def _equip(self, projector: Projector, base: str, count: int, index: int) -> None:
        """Gives a partition's projector (of any stored version) its meter."""
        parks = _parked_in(projector.consumer, count, index)
        projector.meter = self.meter(base, projector.feed.source, str(index), parks)

    async def head(self, source: str) -> int:
        """Returns the head of ``source``'s log as this service's feeds reach it."""
        if source == self.name:
            return await self.events.head()
        return await self.transport.head(source)

    def projectors(self) -> list[Projector]:
        """Returns a projector per partition of each projection and source."""
        return [slot.projector for slot in self.projector_group().slots]

    def reaction_runners(self) -> list[ReactionRunner]:
        """Returns one reaction runner per source service."""
        by_source: dict[str, list[Any]] = {}
        for reaction in self.service.reactions:
            by_source.setdefault(reaction.source, []).append(reaction)
        runners = []
        for source, reactions in sorted(by_source.items()):
            feed = self.feed(source, "reactions")
            runner = ReactionRunner(self.commands, reactions, feed, store=self.reads)
            parks = _parked_by(frozenset(r.name for r in reactions))
            runner.meter = self.meter(runner.name, source, parks=parks)
            runners.append(runner)
        return runners

    @property
    def relay_lease(self) -> str:
        """Returns the name of the lease the active copy of the service's relay holds."""
        return f"relay/{self.name}"

    def reactions_lease(self, source: str) -> str:
        """Returns the name of the lease the active runner of reactions to ``source`` holds."""
        return f"reactions/{self.name}/{source}"

    def workers(self) -> list[Any]:
        """Returns the background workers of this process's roles."""
        found: list[Any] = []
        if "projector" in self.roles:
            found.append(self.projector_group())
        owner = self.worker or worker_id()
        if "relay" in self.roles:
            relay = Relay(self.events, self.transport, registry=self.service.registry)
            relay.meter = self.meter(RELAY_CHECKPOINT, self.name)
            found.append(Exclusive(relay, self.reads, self.relay_lease, owner, self.lease_ttl))
        if "reactions" in self.roles:
            for runner in self.reaction_runners():
                lease = self.reactions_lease(runner.feed.source)
                found.append(Exclusive(runner, self.reads, lease, owner, self.lease_ttl))
        return found


async def _probe(backend: Any, timeout: float) -> str | None:
    """Returns why ``backend`` is not ready, or None when it answered a ping in time.

    A ping still running at the deadline is cancelled but not waited for: a driver may take
    long to give up a round trip into a silent network, and the answer is due now.
    """
    ping = asyncio.ensure_future(backend.ping())
    done, _ = await asyncio.wait({ping}, timeout=timeout)
    if not done:
        ping.cancel()
        ping.add_done_callback(_forget)
        return f"no answer within {timeout:g}s"
    error = ping.exception()
    if error is None:
        return None
    if isinstance(error, BicameralError):
        return error.detail
    return f"{type(error).__name__}: {error}"


def _forget(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def canonical_roles(roles: Iterable[str]) -> frozenset[str]:
    """Returns ``roles`` with old names replaced by their new ones, warning once per old name."""
    found = set()
    for role in roles:
        new = OLD_ROLE_NAMES.get(role)
        if new is not None:
            log.warning("role %r is deprecated: call it %r", role, new)
        found.add(new or role)
    return frozenset(found)


class Node:
    """Starts backends and workers for the chosen services and roles; stops them cleanly.

    Every bus enforces ``authorizer``: by default the handlers' policies, deny by default.
    """

    def __init__(
        self,
        settings: Settings,
        services: Sequence[Service],
        roles: Iterable[str] = ROLES,
        *,
        authorizer: Authorizer | None = None,
        factory: BackendFactory | None = None,
    ) -> None:
        roles = canonical_roles(roles)
        unknown = roles - set(ROLES)
        if unknown:
            raise ConfigurationError(f"unknown roles {sorted(unknown)}; known: {', '.join(ROLES)}")
        self.settings = settings
        warn_if_shared(settings.data_dir)
        self.authorizer = authorizer or authorizer_for(settings)
        self.factory = factory or BackendFactory()
        transport = self.factory.transport(settings.transport)
        # A node of every role (``bicameral up``) is the only projector of its data: it keeps
        # one worker name, so after a crash it takes its partitions back without waiting for
        # its old leases to expire.
        worker = f"{socket.gethostname()}:up" if roles == frozenset(ROLES) else None
        self.runtimes: dict[str, ServiceRuntime] = {}
        for service in services:
            urls = settings.service(service.name)
            self.runtimes[service.name] = ServiceRuntime(
                service,
                self.factory.event_store(service.name, urls.events_url),
                self.factory.read_store(urls.reads_url),
                transport,
                roles,
                self.authorizer,
                partitions=settings.partitions,
                lease_ttl=settings.lease_ttl,
                worker=worker,
            )
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    def runtime(self, name: str) -> ServiceRuntime:
        """Returns the runtime of service ``name``."""
        return self.runtimes[name]

    def used(self) -> dict[str, Any]:
        """Returns the backends this process's roles use, by name (``<service>.events``,
        ``<service>.reads``, ``transport``); every backend for a node with no roles.

        A query-api process, say, never connects to the event store or the transport. Relays
        and reaction runners use the read store for their leases.
        """
        used: dict[str, Any] = {}
        for rt in self.runtimes.values():
            roles = rt.roles or frozenset(ROLES)
            if roles & {"command-api", "projector", "relay", "reactions"}:
                used[f"{rt.name}.events"] = rt.events
            if roles & {"query-api", "projector", "relay", "reactions"}:
                used[f"{rt.name}.reads"] = rt.reads
            if roles & {"projector", "relay", "reactions"}:
                used["transport"] = rt.transport
        return used

    def backends(self) -> list[Any]:
        """Returns the distinct backends this process's roles use, in the order they were made."""
        used = self.used().values()
        return [b for b in self.factory.started() if any(b is u for u in used)]

    async def unready(self, timeout: float = 1.0) -> dict[str, str]:
        """Returns what keeps this process from serving now: backend name -> reason.

        Every backend in use is pinged at once; one that fails or does not answer within
        ``timeout`` seconds is down. Empty when the node is started and all answered.
        """
        if not self.started:
            return {"node": "starting"}
        used = self.used()
        distinct = {id(b): b for b in used.values()}
        reasons = await asyncio.gather(*(_probe(b, timeout) for b in distinct.values()))
        down = dict(zip(distinct, reasons, strict=True))
        return {name: why for name, b in used.items() if (why := down[id(b)]) is not None}

    async def start(self) -> None:
        """Starts tracing as the ``OTEL_*`` variables say (``runtime.tracing``), the backends
        in use, prepares read models, then runs the workers in tasks (once: a started node
        stays as it is)."""
        if self.started:
            return
        if self.runtimes and any(rt.roles for rt in self.runtimes.values()):
            start_tracing(next(iter(self.runtimes)) if len(self.runtimes) == 1 else "bicameral")
        for backend in self.backends():
            await backend.start()
        self._stop = asyncio.Event()
        for runtime in self.runtimes.values():
            if runtime.roles & {"command-api", "projector", "relay", "reactions"}:
                await refuse_unreadable(runtime.service, runtime.events)
            if runtime.roles & {"query-api", "projector"}:
                await runtime.projector_group().prepare()
            for worker in runtime.workers():
                self._tasks.append(asyncio.create_task(self._guard(worker)))
        self.started = True

    async def _guard(self, worker: Any) -> None:
        await supervise(worker.run, self._stop, name=f"worker {worker!r}", logger=log)

    async def stop(self) -> None:
        """Stops the workers, then closes every backend."""
        self._stop.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()
        for backend in reversed(self.factory.started()):
            with contextlib.suppress(Exception):
                await backend.close()
        await flush_tracing()
        self.started = False
