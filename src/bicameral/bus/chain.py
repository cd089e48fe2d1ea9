"""The one middleware chain both buses run: ``observe`` (log and count each message by
outcome, with its correlation ids bound to every log line it causes), ``authorize``, the bus's
own and the user's middleware, then the handler. With tracing on, the whole chain runs in a
span ``command <Name>`` or ``query <Name>``."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypedDict, TypeVar

from structlog.contextvars import bind_contextvars, reset_contextvars

from bicameral import tracing
from bicameral.bus.calls import AllowAll, Authorizer
from bicameral.consistency import Notifier
from bicameral.context import MessageContext, Principal
from bicameral.errors import BicameralError
from bicameral.service import CommandHandler, QueryHandler, Service

__all__ = ["Bus", "BusOptions", "Call", "Chain", "Meters", "Middleware", "Next", "outcome_of"]

log = logging.getLogger("bicameral.bus")

C = TypeVar("C", bound="Call")
R = TypeVar("R")

Next = Callable[[C], Awaitable[R]]
"""Calls the rest of the chain."""
Middleware = Callable[[C, Next[C, R]], Awaitable[R]]
"""Does its part around ``next(call)`` and returns its result (or raises)."""


class Call(Protocol):
    """What every call through a chain names: its message type and context, for logs and
    metrics."""

    @property
    def message_name(self) -> str:
        """Returns the message's type name."""
        ...

    @property
    def context(self) -> MessageContext:
        """Returns the message's metadata: who sent it, its correlation and causation."""
        ...


class Meters:
    """One service's counter and timer children, looked up once per message and outcome.

    (``labels()`` takes a lock and builds a key each call: 10-15% of a command's CPU time.)
    """

    def __init__(self, counter: Any, timer: Any, service: str) -> None:
        self._counter = counter
        self._timer = timer
        self._service = service
        self._counts: dict[tuple[str, str], Any] = {}
        self._timers: dict[str, Any] = {}

    def record(self, name: str, outcome: str, seconds: float) -> None:
        """Counts one message with its outcome and observes its duration."""
        count = self._counts.get((name, outcome))
        if count is None:
            count = self._counts[(name, outcome)] = self._counter.labels(
                self._service, name, outcome
            )
        count.inc()
        timer = self._timers.get(name)
        if timer is None:
            timer = self._timers[name] = self._timer.labels(self._service, name)
        timer.observe(seconds)


def outcome_of(exc: BaseException | None) -> str:
    """Returns a message's outcome label: ``ok``, the BicameralError's class name, or ``error``."""
    if exc is None:
        return "ok"
    if isinstance(exc, BicameralError):
        return type(exc).__name__
    return "error"


class Chain(Generic[C, R]):
    """A handler wrapped in middleware, outermost first, with ``observe`` always outermost."""

    def __init__(
        self,
        kind: str,
        meters: Meters,
        handle: Next[C, R],
        middleware: Sequence[Middleware[C, R]],
        service: str = "",
    ) -> None:
        self._kind = kind
        self._meters = meters
        self._service = service
        chain = handle
        for mw in reversed([self._observe, *middleware]):
            chain = _bind(mw, chain)
        self._chain = chain

    async def __call__(self, call: C) -> R:
        """Returns what the chain makes of ``call``."""
        if tracing.enabled():
            return await self._traced(call)
        return await self._chain(call)

    async def _traced(self, call: C) -> R:
        context = call.context
        attributes = {
            "bicameral.service": self._service,
            "bicameral.message": call.message_name,
            "bicameral.correlation_id": context.correlation_id,
            "bicameral.message_id": context.message_id,
        }
        with tracing.span(
            f"{self._kind} {call.message_name}", attributes=attributes, expected=(BicameralError,)
        ) as span:
            try:
                return await self._chain(call)
            except BaseException as exc:
                span.set_attribute("bicameral.outcome", outcome_of(exc))
                raise

    async def _observe(self, call: C, next: Next[C, R]) -> R:
        started = time.perf_counter()
        failure: BaseException | None = None
        context = call.context
        bound = bind_contextvars(
            correlation_id=context.correlation_id,
            causation_id=context.causation_id,
            message_id=context.message_id,
        )
        try:
            return await next(call)
        except BaseException as exc:
            failure = exc
            if not isinstance(exc, BicameralError) and isinstance(exc, Exception):
                log.exception("%s %s failed", self._kind, call.message_name)
            raise
        finally:
            reset_contextvars(**bound)
            self._meters.record(
                call.message_name, outcome_of(failure), time.perf_counter() - started
            )


def _bind(mw: Middleware[C, R], next: Next[C, R]) -> Next[C, R]:
    async def step(call: C) -> R:
        return await mw(call, next)

    return step


class BusOptions(TypedDict, Generic[C, R], total=False):
    """What every bus takes besides its service and store."""

    authorizer: Authorizer | None
    """Who may send what (default: ``AllowAll``)."""
    middleware: Sequence[Middleware[C, R]]
    """The user's middleware, outermost first, between authorization and the bus's own step."""
    notifier: Notifier | None
    """Woken when events are appended (commands) or awaited for tokens (queries)."""


class Bus(Generic[C, R]):
    """What both buses are: a service's handlers behind one chain of observe, authorize, the
    user's middleware and the bus's own innermost step."""

    observed: ClassVar[tuple[str, Any, Any]]
    """How this bus's messages are observed: their kind in logs (``command`` or ``query``),
    the Prometheus counter of messages by outcome, and the histogram of their durations."""

    def __init__(
        self,
        service: Service,
        *,
        authorizer: Authorizer | None = None,
        middleware: Sequence[Middleware[C, R]] = (),
        notifier: Notifier | None = None,
    ) -> None:
        self.service = service
        self.notifier = notifier
        self._authorizer = authorizer or AllowAll()
        kind, counter, timer = self.observed
        self._chain = Chain[C, R](
            kind,
            Meters(counter, timer, service.name),
            self._handle,
            [self._authorize, *middleware, self._innermost],
            service.name,
        )

    def screen(self, principal: Principal, handler: CommandHandler | QueryHandler) -> None:
        """Raises an AccessError when ``principal`` could send no message of ``handler``."""
        self._authorizer.screen(principal, handler)

    async def _authorize(self, call: C, next: Next[C, R]) -> R:
        await self.authorize(call)
        return await next(call)

    async def authorize(self, call: C) -> None:
        """Returns when the call may run; raises an AccessError when not."""
        raise NotImplementedError

    async def _innermost(self, call: C, next: Next[C, R]) -> R:
        """The bus's own step after the user's middleware (idempotency, consistency)."""
        return await next(call)

    async def _handle(self, call: C) -> R:
        raise NotImplementedError
