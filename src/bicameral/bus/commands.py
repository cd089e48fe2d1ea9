"""The command bus: each command through the chain (observe, authorize, the user's
middleware, idempotency), then its handler runs with its aggregates loaded, and its events
are appended in one atomic step. A handler declared with ``retries=N`` runs again, at most N
times, after a ConcurrencyError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import Any, Unpack

import orjson

from bicameral import metrics, tracing
from bicameral.aggregate import Aggregate, AggregateCache, Repository
from bicameral.bus.calls import CommandCall, CommandResult, RecordFilter
from bicameral.bus.chain import Bus, BusOptions, Middleware, Next
from bicameral.context import MessageContext
from bicameral.errors import (
    BicameralError,
    ConcurrencyError,
    IdempotencyKeyReusedError,
    NotFoundError,
    UnknownMessageError,
)
from bicameral.messages import Command
from bicameral.ports import AppendResult, EventStore, SnapshotStore
from bicameral.service import Param, Service

__all__ = ["CommandBus", "CommandMiddleware", "request_hash"]

CommandNext = Next[CommandCall, CommandResult]
CommandMiddleware = Middleware[CommandCall, CommandResult]


def request_hash(command: Command) -> str:
    """Returns a digest of a command's type and body, to recognise a repeated request."""
    raw = orjson.dumps(command.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(command.type_name.encode() + b"\0" + raw).hexdigest()


class _UnitOfWork:
    """The repositories one command handler call used, saved in one atomic append."""

    def __init__(
        self,
        service: Service,
        store: EventStore,
        visible: RecordFilter | None = None,
        cache: AggregateCache | None = None,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self._service = service
        self._store = store
        self._visible = visible
        self._cache = cache
        self._snapshots = snapshots
        self._repos: dict[type[Aggregate], Repository[Any]] = {}
        self.hidden: list[Aggregate] = []

    def repository(self, cls: type[Any]) -> Repository[Any]:
        repo = self._repos.get(cls)
        if repo is None:
            repo = self._repos[cls] = Repository(
                cls, self._store, self._service.registry, self._cache, self._snapshots
            )
        return repo

    @property
    def used_cache(self) -> bool:
        """Returns True when any aggregate came from the cache (and so may be stale)."""
        return any(repo.used_cache for repo in self._repos.values())

    @property
    def used_snapshot(self) -> bool:
        """Returns True when any aggregate was loaded from a snapshot."""
        return any(repo.used_snapshot for repo in self._repos.values())

    @property
    def used_shortcut(self) -> bool:
        """Returns True when any aggregate came from the cache or a snapshot."""
        return self.used_cache or self.used_snapshot

    @property
    def shortcut_unchecked(self) -> bool:
        """Returns True when a cached or snapshot-loaded aggregate appends nothing, so the
        append will not check the state the decision was taken on."""
        return any(repo.cache_unchecked or repo.snapshot_unchecked for repo in self._repos.values())

    def release(self) -> None:
        """Gives the loaded aggregates back to the cache: their events are committed."""
        for repo in self._repos.values():
            repo.release()

    async def load(self, cls: type[Any], key: str) -> Any:
        """Returns aggregate ``key``, or a blank stand-in (never saved) if the caller may not
        see it."""
        aggregate = await self.repository(cls).get(key)
        if self._visible is not None and aggregate.exists and not self._visible(None, aggregate):
            aggregate = cls(key)  # another's: looks new, and is never saved
            self.hidden.append(aggregate)
        return aggregate

    async def argument(self, param: Param, call: CommandCall) -> Any:
        if param.kind == "aggregate":
            assert param.cls is not None
            assert call.handler.key is not None
            return await self.load(param.cls, call.handler.key(call.command))
        if param.kind == "repository":
            assert param.cls is not None
            if self._visible is None:
                return self.repository(param.cls)
            return _VisibleRepository(self, param.cls)
        if param.kind == "context":
            return call.context
        if param.kind == "principal":
            return call.context.principal
        raise BicameralError(f"a command handler cannot take {param.kind}")

    def collect(self, metadata: dict[str, Any]) -> list[Any]:
        appends: list[Any] = []
        for repo in self._repos.values():
            appends.extend(repo.collect(metadata))
        return appends


class _VisibleRepository(Repository[Any]):
    """A Repository handing out only the aggregates the caller may see (others look new)."""

    def __init__(self, uow: _UnitOfWork, cls: type[Any]) -> None:
        self._uow = uow
        self.cls = cls

    async def get(self, id: str) -> Any:
        """Returns the aggregate with ``id``, or a blank one if the caller may not see it."""
        return await self._uow.load(self.cls, id)

    def collect(self, metadata: dict[str, object]) -> list[Any]:
        """Returns nothing: the unit of work saves what its own repositories loaded."""
        return []


class CommandBus(Bus[CommandCall, CommandResult]):
    """Sends each command to its handler through the middleware chain.

    Aggregates stay cached between commands (``cache_size`` of them; 0 turns it off): a command
    then appends without reading its stream first. Aggregates whose class takes snapshots
    (``Aggregate.snapshot_every``) load from their latest snapshot plus the events after it, when
    the store keeps snapshots (``snapshots=False`` turns that off). Only a decision the append
    checks is taken on a cached copy or a snapshot: a conflict, a refusal, or a copy that appends
    nothing makes the handler run again on full loads from the events (not counted against its
    ``retries``).
    """

    observed = ("command", metrics.COMMANDS, metrics.COMMAND_SECONDS)

    def __init__(
        self,
        service: Service,
        store: EventStore,
        *,
        cache_size: int = 10_000,
        snapshots: bool = True,
        **options: Unpack[BusOptions[CommandCall, CommandResult]],
    ) -> None:
        super().__init__(service, **options)
        self.store = store
        self.cache = AggregateCache(cache_size) if cache_size > 0 else None
        self.snapshots = store if snapshots and isinstance(store, SnapshotStore) else None
        self._appended: Any = None

    async def dispatch(self, command: Command, context: MessageContext) -> CommandResult:
        """Returns the result of running ``command``; raises a BicameralError when refused."""
        handler = self.service.commands.get(command.message_name)
        if handler is None or handler.command is not type(command):
            raise UnknownMessageError(
                f"{self.service.name} has no handler for {command.message_name}"
            )
        return await self._chain(CommandCall(command, context, handler))

    async def authorize(self, call: CommandCall) -> None:
        """Returns when the command may run; raises an AccessError when not."""
        await self._authorizer.authorize_command(call)

    async def _innermost(self, call: CommandCall, next: CommandNext) -> CommandResult:
        """Answers a repeated Idempotency-Key with the first result, without running again."""
        key = call.context.idempotency_key
        if key is None:
            return await next(call)
        digest = request_hash(call.command)
        earlier = await self.store.idempotent_result(key)
        if earlier is not None:
            return self._replay(earlier, digest)
        return await next(call)

    def _replay(self, earlier: AppendResult, digest: str) -> CommandResult:
        if earlier.request_hash != digest:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used before with a different request"
            )
        return CommandResult(self.service.name, earlier.position, earlier.versions, replayed=True)

    async def _traced(self, appending: Awaitable[AppendResult]) -> AppendResult:
        """Returns the result of ``appending``, awaited in a span ``append <service>``."""
        with tracing.span(
            f"append {self.service.name}",
            attributes={"bicameral.service": self.service.name},
            expected=(BicameralError,),
        ) as span:
            result = await appending
            span.set_attribute("bicameral.events", len(result.envelopes))
            span.set_attribute("bicameral.position", result.position)
            return result

    async def _handle(self, call: CommandCall) -> CommandResult:
        handler = call.handler
        key = call.context.idempotency_key
        digest = request_hash(call.command) if key is not None else ""
        visible = self._authorizer.record_filter(call)
        attempt = 0
        cache, snapshots = self.cache, self.snapshots
        while True:
            uow = _UnitOfWork(self.service, self.store, visible, cache, snapshots)
            args = [await uow.argument(p, call) for p in handler.params]
            try:
                outcome = handler.fn(call.command, *args)
                if handler.is_async:
                    await outcome
            except BicameralError:
                if not uow.used_shortcut:
                    raise
                # refused on a cached copy (maybe stale) or a snapshot: decide on full loads
                cache = snapshots = None
                continue
            if uow.shortcut_unchecked:
                cache = snapshots = None  # the append would not check it: decide on full loads
                continue
            if any(agg.pending for agg in uow.hidden):
                raise NotFoundError(f"{handler.command.message_name}: no such entity")
            metadata = call.context.event_metadata()
            traced = tracing.enabled()
            if traced:
                tracing.inject(metadata)  # the events carry the command's span onwards
            appends = uow.collect(metadata)
            try:
                appending = self.store.append(appends, idempotency_key=key, request_hash=digest)
                result = await (self._traced(appending) if traced else appending)
            except ConcurrencyError:
                if uow.used_cache:
                    cache = None  # a cached copy was stale: run again on fresh loads
                    continue
                if uow.used_snapshot:
                    snapshots = None  # raced, or a snapshot ahead of its stream: full loads
                    continue
                attempt += 1
                if attempt > handler.retries:
                    raise
                continue
            if result.replayed:
                return self._replay(result, digest)
            uow.release()
            if result.envelopes:
                if self._appended is None:
                    self._appended = metrics.EVENTS_APPENDED.labels(self.service.name)
                self._appended.inc(len(result.envelopes))
                if self.notifier is not None:
                    self.notifier.notify()
            return CommandResult(
                self.service.name, result.position, result.versions, envelopes=result.envelopes
            )
