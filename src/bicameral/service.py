"""A Service declares what one microservice does: its commands, queries, projections, reactions.

Handlers are plain typed functions. The first parameter is the message; each further
parameter is provided by its annotation::

    inventory = Service("inventory")

    @inventory.command(key="sku", retries=3)
    def receive_stock(cmd: ReceiveStock, product: Product) -> None:
        product.receive(cmd.quantity)

- an ``Aggregate`` subclass: the aggregate whose id is ``key`` of the command, loaded for it;
- ``Repository[X]``: a repository to load any number of X (all saved in one atomic append);
- ``MessageContext`` or ``Principal``: who sends the message, and its correlation;
- ``ReadModel`` (queries): the service's read models; ``Envelope`` (reactions): the event's.

Declaring wires nothing and connects nothing: ``bicameral.runtime.bootstrap`` does that.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bicameral.aggregate import Aggregate, Repository
from bicameral.context import MessageContext, Principal
from bicameral.envelope import Envelope
from bicameral.errors import ConfigurationError
from bicameral.messages import Command, Event, Message, MessageRegistry, Query
from bicameral.projection import Projection, source_of

__all__ = [
    "CommandHandler",
    "Param",
    "QueryHandler",
    "Reaction",
    "ReadModel",
    "Service",
]

F = TypeVar("F", bound=Callable[..., Any])


class ReadModel(typing.Protocol):
    """What a query handler reads: a service's read-model collections by name."""

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document, or None."""
        ...

    async def find(self, collection: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Returns the documents whose indexed ``field`` equals ``value``, ordered by key."""
        ...

    async def all(self, collection: str) -> list[dict[str, Any]]:
        """Returns every document of a collection, ordered by key."""
        ...


@dataclass(frozen=True, slots=True)
class Param:
    """One injected handler parameter: what kind, and of which class."""

    kind: str  # "aggregate" | "repository" | "context" | "principal" | "readmodel" | "envelope"
    cls: type[Any] | None = None


_ALLOWED = {
    Command: frozenset({"aggregate", "repository", "context", "principal"}),
    Query: frozenset({"readmodel", "context", "principal"}),
    Event: frozenset({"envelope"}),
}


def _params(fn: Callable[..., Any], message_base: type[Message]) -> tuple[type[Any], list[Param]]:
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError) as exc:
        raise ConfigurationError(f"{fn.__qualname__}: cannot resolve annotations: {exc}") from None
    names = list(inspect.signature(fn).parameters)
    if not names:
        raise ConfigurationError(f"{fn.__qualname__} must take the message as first parameter")
    message = hints.get(names[0])
    if not (isinstance(message, type) and issubclass(message, message_base)):
        raise ConfigurationError(
            f"{fn.__qualname__}: first parameter must be annotated with a {message_base.__name__}"
        )
    params: list[Param] = []
    for name in names[1:]:
        hint = hints.get(name)
        origin = typing.get_origin(hint)
        if origin is Repository:
            params.append(Param("repository", typing.get_args(hint)[0]))
        elif isinstance(hint, type) and issubclass(hint, Aggregate):
            params.append(Param("aggregate", hint))
        elif hint is MessageContext:
            params.append(Param("context"))
        elif hint is Principal:
            params.append(Param("principal"))
        elif hint is ReadModel:
            params.append(Param("readmodel"))
        elif hint is Envelope:
            params.append(Param("envelope"))
        else:
            raise ConfigurationError(f"{fn.__qualname__}: cannot provide parameter {name!r}")
        if params[-1].kind not in _ALLOWED[message_base]:
            raise ConfigurationError(
                f"{fn.__qualname__}: a {message_base.__name__.lower()} handler cannot take "
                f"{params[-1].kind} (parameter {name!r})"
            )
    return message, params


@dataclass(frozen=True, slots=True)
class CommandHandler:
    """A command's handler and how to call it."""

    command: type[Command]
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    key: Callable[[Any], str] | None
    retries: int
    internal: bool
    policy: Any
    is_async: bool


@dataclass(frozen=True, slots=True)
class QueryHandler:
    """A query's handler, the projections it reads, and how to call it."""

    query: type[Query]
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    reads: tuple[Projection, ...] | None
    policy: Any
    is_async: bool

    @property
    def result(self) -> Any:
        """Returns the handler's declared return type (for the API schema)."""
        return typing.get_type_hints(self.fn).get("return")


@dataclass(frozen=True, slots=True)
class Reaction:
    """Turns events of ``source`` into commands of this service (a policy or a saga step).

    ``name`` is its stable identity: it names the reaction among parked events and in the
    idempotency keys of the commands it sends, so renaming the function changes neither.
    """

    name: str
    source: str
    event: type[Event]
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    is_async: bool
    retries: int = 3


@dataclass
class Service:
    """One microservice's declarations, by name."""

    name: str
    registry: MessageRegistry = field(default_factory=MessageRegistry)
    commands: dict[str, CommandHandler] = field(default_factory=dict)
    queries: dict[str, QueryHandler] = field(default_factory=dict)
    projections: list[Projection] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)

    def events(self, *classes: type[Event]) -> None:
        """Registers event classes this service stores or reads, so they can be decoded.

        Needed only for an event that no projection or reaction of the service handles, yet an
        aggregate of it records (its stream must be loaded again); the others are registered
        by ``projection()`` (handlers added to the projection later included) and ``on()``.
        """
        for cls in classes:
            self.registry.register(cls)

    @typing.overload
    def command(
        self,
        fn: F,
        *,
        key: str | Callable[[Any], str] | None = None,
        retries: int = 0,
        internal: bool = False,
        policy: Any = None,
    ) -> F: ...

    @typing.overload
    def command(
        self,
        fn: None = None,
        *,
        key: str | Callable[[Any], str] | None = None,
        retries: int = 0,
        internal: bool = False,
        policy: Any = None,
    ) -> Callable[[F], F]: ...

    def command(
        self,
        fn: F | None = None,
        *,
        key: str | Callable[[Any], str] | None = None,
        retries: int = 0,
        internal: bool = False,
        policy: Any = None,
    ) -> F | Callable[[F], F]:
        """Registers a command handler (as a decorator, with or without arguments).

        ``key`` names the command field (or a function of the command) holding the id of the
        aggregate parameter; ``retries`` bounds re-runs after a ConcurrencyError; ``internal``
        keeps the command off the HTTP API (only reactions may send it).
        """

        def register(fn: F) -> F:
            command, params = _params(fn, Command)
            if command.message_name in self.commands:
                raise ConfigurationError(f"{self.name}: two handlers for {command.message_name}")
            if any(p.kind == "aggregate" for p in params) and key is None:
                raise ConfigurationError(f"{fn.__qualname__}: an aggregate parameter needs key=")
            key_fn = (lambda m: str(getattr(m, key))) if isinstance(key, str) else key
            self.registry.register(command)
            self.commands[command.message_name] = CommandHandler(
                command,
                fn,
                tuple(params),
                key_fn,
                retries,
                internal,
                policy,
                inspect.iscoroutinefunction(fn),
            )
            return fn

        return register(fn) if fn is not None else register

    @typing.overload
    def query(
        self,
        fn: F,
        *,
        reads: Sequence[Projection] | None = None,
        policy: Any = None,
    ) -> F: ...

    @typing.overload
    def query(
        self,
        fn: None = None,
        *,
        reads: Sequence[Projection] | None = None,
        policy: Any = None,
    ) -> Callable[[F], F]: ...

    def query(
        self,
        fn: F | None = None,
        *,
        reads: Sequence[Projection] | None = None,
        policy: Any = None,
    ) -> F | Callable[[F], F]:
        """Registers a query handler; ``reads`` names the projections it reads (default: all)."""

        def register(fn: F) -> F:
            query, params = _params(fn, Query)
            if query.message_name in self.queries:
                raise ConfigurationError(f"{self.name}: two handlers for {query.message_name}")
            self.registry.register(query)
            self.queries[query.message_name] = QueryHandler(
                query,
                fn,
                tuple(params),
                tuple(reads) if reads is not None else None,
                policy,
                inspect.iscoroutinefunction(fn),
            )
            return fn

        return register(fn) if fn is not None else register

    def projection(self, projection: Projection) -> Projection:
        """Registers a projection whose read models this service's queries serve."""
        owned = {c for p in self.projections for c in p.collections}
        clash = owned & set(projection.collections)
        if clash:
            raise ConfigurationError(f"{self.name}: collections {sorted(clash)} declared twice")
        self.projections.append(projection)
        projection.attach(self.registry)
        return projection

    def on(
        self,
        event: type[Event],
        *,
        source: str | None = None,
        name: str | None = None,
        retries: int = 3,
    ) -> Callable[[F], F]:
        """Registers a reaction: ``fn(event[, envelope, ...]) -> Command | list | None``.

        Its identity is ``<service>.<name>``, or ``<service>.on.<event name>`` without
        ``name``; two reactions of a service with one identity are refused. An event the
        reaction fails on (not a business refusal) is tried ``retries`` more times, then parked.
        """

        def register(fn: F) -> F:
            declared, params = _params(fn, Event)
            if declared is not event:
                raise ConfigurationError(f"{fn.__qualname__} must take {event.__name__} first")
            if retries < 0:
                raise ConfigurationError(f"{fn.__qualname__}: retries must be 0 or more")
            identity = f"{self.name}.{name}" if name else f"{self.name}.on.{event.message_name}"
            if any(r.name == identity for r in self.reactions):
                raise ConfigurationError(
                    f"{self.name}: two reactions are called {identity!r}; give each its own name="
                )
            self.registry.register(event)
            self.reactions.append(
                Reaction(
                    identity,
                    source or source_of(event, self.name),
                    event,
                    fn,
                    tuple(params),
                    inspect.iscoroutinefunction(fn),
                    retries,
                ),
            )
            return fn

        return register

    def projection_reading(self, collection: str) -> Projection:
        """Returns the projection owning ``collection``."""
        for projection in self.projections:
            if collection in projection.collections:
                return projection
        raise ConfigurationError(f"{self.name} has no read-model collection {collection!r}")

    def reads_of(self, handler: QueryHandler) -> tuple[Projection, ...]:
        """Returns the projections a query reads."""
        return handler.reads if handler.reads is not None else tuple(self.projections)


Handler = Callable[..., Awaitable[Any] | Any]
