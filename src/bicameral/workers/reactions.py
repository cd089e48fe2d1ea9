"""Reactions and process managers: events from any service turned into this service's commands.

A reaction (``Service.on``) returns the commands an event calls for. The ReactionRunner sends
them on the service's own command bus under the service's identity, acting for the user who
caused the event, with an idempotency key made from the reaction's identity and the event id:
the key is recorded in the same transaction as the command's events (the inbox), so a
redelivered or retried event changes nothing. A process manager is an aggregate of the service
(its state, correlated by id) whose commands its reactions send; compensation is one more
reaction.

Each reaction to an event ends one of three ways:

- **done**: its commands ran (or it returned none);
- **refused** by a business rule the reaction is written to expect (``RuleViolation``,
  ``NotFoundError`` or another ``ConflictError``): logged as a warning and counted, as a
  result of the saga like any other;
- **poison**: anything else, from decoding the event to the reaction itself to a command the
  service refuses to run (no handler, a permission refused, a configuration error, an invalid
  command): tried ``reaction.retries`` more times, then parked with every later event of the
  same stream for that reaction (``bicameral.parking``), in the commit that moves the
  runner's checkpoint; other streams go on.

A transient failure (``workers.retry.TRANSIENT``: a backend away, a timeout, or a command still
in conflict with a concurrent writer after its own retries) fails the step: the batch is run
again later, with backoff (the inbox makes its earlier commands no-ops), never dropped.

The runner's checkpoint lives in the service's read store, beside its parked events
(``<service>/reactions:<source>``), and moves by compare-and-set (``ReadStore.commit``), so a
copy that lost its lease cannot move it back; one saved by an earlier release in the event
store is taken over on the first step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bicameral import metrics, tracing
from bicameral.bus import CommandBus
from bicameral.context import MessageContext, Principal
from bicameral.envelope import Envelope
from bicameral.errors import BicameralError, ConcurrencyError, ConflictError, NotFoundError
from bicameral.messages import Command
from bicameral.parking import Failure, Park
from bicameral.ports import Changes, ReadStore
from bicameral.service import Reaction
from bicameral.workers.feeds import Feed
from bicameral.workers.meters import Meter
from bicameral.workers.parked import Handle
from bicameral.workers.retry import TRANSIENT, retrying

__all__ = ["ReactionRunner", "react", "reaction_handle", "service_principal"]

log = logging.getLogger("bicameral.workers.reactions")


def service_principal(service: str, cause: Envelope | None = None) -> Principal:
    """Returns the identity a service acts with, for the user behind ``cause`` if any.

    The user is the one the cause's actor acted for, or that actor itself unless it is a
    service: a service acting for nobody passes nobody on.
    """
    user = None
    if cause is not None:
        actor = cause.principal
        user = actor.get("on_behalf_of") or (None if actor.get("service") else actor.get("subject"))
        user = user or None
    return Principal(
        subject=f"service:{service}",
        roles=frozenset({"service"}),
        service=service,
        on_behalf_of=user,
    )


async def react(bus: CommandBus, reaction: Reaction, env: Envelope) -> None:
    """Runs ``reaction`` for ``env`` and sends its commands; returns once done or refused.

    Raises what is poison (see the module docstring) and what is retried later. With tracing
    on, it runs in a span ``react <reaction>``, a child of the event's trace context, so the
    commands it sends continue the trace of the request that caused the event.
    """
    if not tracing.enabled():
        return await _react(bus, reaction, env)
    with tracing.span(
        f"react {reaction.name}",
        kind=tracing.SpanKind.CONSUMER,
        parent=tracing.context_of(env.metadata),
        attributes={
            "bicameral.service": bus.service.name,
            "bicameral.reaction": reaction.name,
            "bicameral.event": env.type,
            "bicameral.event_id": env.id,
            "bicameral.source": env.source,
            "bicameral.position": env.position,
        },
    ):
        await _react(bus, reaction, env)


async def _react(bus: CommandBus, reaction: Reaction, env: Envelope) -> None:
    event = reaction.event.model_validate(env.data)
    args: list[Any] = []
    for param in reaction.params:
        if param.kind != "envelope":
            raise BicameralError(f"{reaction.name} cannot take {param.kind}")
        args.append(env)
    out = reaction.fn(event, *args)
    if reaction.is_async:
        out = await out
    commands: list[Command] = (
        [] if out is None else [out] if isinstance(out, Command) else list(out)
    )
    meta = env.metadata
    for index, command in enumerate(commands):
        context = MessageContext(
            principal=service_principal(bus.service.name, env),
            correlation_id=str(meta.get("correlation_id") or env.id),
            causation_id=env.id,
            traceparent=meta.get("traceparent"),
            idempotency_key=f"{reaction.name}:{env.id}:{index}",
        )
        try:
            await bus.dispatch(command, context)
        except ConcurrencyError:
            raise
        except (ConflictError, NotFoundError) as exc:
            metrics.REACTIONS_REFUSED.labels(reaction.name).inc()
            log.warning("%s: %s refused: %s", reaction.name, command.message_name, exc.detail)


def reaction_handle(bus: CommandBus, reaction: Reaction) -> Handle:
    """Returns the handle retrying a parked event of ``reaction`` (see ``workers.parked``)."""

    async def handle(envelope: Envelope) -> Changes:
        await react(bus, reaction, envelope)
        return {}

    return handle


class ReactionRunner:
    """Runs the reactions of one service to one source's events, at least once, in order."""

    def __init__(
        self,
        bus: CommandBus,
        reactions: Sequence[Reaction],
        feed: Feed,
        *,
        store: ReadStore,
        batch_size: int = 100,
        retry_delay: float = 0.1,
    ) -> None:
        self.bus = bus
        self.feed = feed
        self.store = store
        self.batch_size = batch_size
        self.retry_delay = retry_delay
        self.by_type: dict[str, list[Reaction]] = {}
        for reaction in reactions:
            self.by_type.setdefault(reaction.event.type_name, []).append(reaction)
        self.name = f"reactions:{feed.source}"
        self.checkpoint_name = f"{bus.service.name}/{self.name}"
        self.meter = Meter(bus.service.name, self.name)
        """Where this runner stands, for ``/metrics`` (the runtime registers it)."""
        self._parked: dict[str, set[str]] = {}
        self._adopted = False

    async def _checkpoint(self) -> int:
        """Returns the checkpoint, first taking over one an earlier release kept in the log."""
        after = await self.store.checkpoint(self.checkpoint_name)
        if after == 0 and not self._adopted:
            self._adopted = True
            earlier = await self.bus.store.load_checkpoint(self.name)
            if earlier > 0:
                await self.store.commit(self.checkpoint_name, 0, earlier, {})
                after = await self.store.checkpoint(self.checkpoint_name)
        return after

    async def _parked_keys(self, reaction: Reaction) -> set[str]:
        found = self._parked.get(reaction.name)
        if found is None:
            found = self._parked[reaction.name] = await self.store.parked_keys(reaction.name)
        return found

    async def step(self, timeout: float = 1.0) -> int:
        """Handles the next batch of events; returns how many it handled.

        A commit refused because the checkpoint or the parked sequences moved meanwhile is made
        again from what the store holds now (the inbox makes repeated commands no-ops).
        """
        try:
            for _ in range(3):
                moved = await self._step(timeout)
                if moved is not None:
                    return moved
                timeout = 0.0
        except Exception as exc:
            self.meter.failed(exc)
            raise
        return 0

    async def _step(self, timeout: float) -> int | None:
        after = await self._checkpoint()
        self.meter.at(after)
        batch = [
            e for e in await self.feed.fetch(after, self.batch_size, timeout) if e.position > after
        ]
        self.meter.fetched(batch)
        if not batch:
            return 0
        service = self.bus.service.name
        parks: list[Park] = []
        try:
            for env in batch:
                for reaction in self.by_type.get(env.type, ()):
                    parked = await self._parked_keys(reaction)
                    if env.subject in parked:
                        parks.append(Park(service, reaction.name, env.subject, env))
                        continue
                    failure = await self._attempt(reaction, env)
                    if failure is not None:
                        parks.append(self._open(reaction, env, failure))
                        parked.add(env.subject)
            done = await self.store.commit(
                self.checkpoint_name, after, batch[-1].position, {}, parks
            )
        except BaseException:
            self._parked.clear()
            raise
        if not done:
            self._parked.clear()
            log.info("%s: checkpoint or parked events moved meanwhile; re-reading", self.name)
            return None
        if parks:
            for park in parks:
                metrics.PARKED_EVENTS.labels(park.consumer).inc()
        self.meter.handled(batch[-1].position)
        await self.feed.ack(batch)
        return len(batch)

    async def _attempt(self, reaction: Reaction, env: Envelope) -> Failure | None:
        """Runs ``reaction`` for ``env``, up to 1 + retries times; returns the last failure."""
        failure = None
        for attempt in range(reaction.retries + 1):
            try:
                await react(self.bus, reaction, env)
                return None
            except Exception as exc:
                if isinstance(exc, TRANSIENT):
                    raise  # fails the step: the batch runs again later
                self.meter.failed(exc)
                failure = Failure.of(exc, attempt + 1)
                if attempt < reaction.retries and self.retry_delay > 0:
                    await asyncio.sleep(self.retry_delay * 2**attempt)
        return failure

    def _open(self, reaction: Reaction, env: Envelope, failure: Failure) -> Park:
        log.error(
            "%s: parked event %s (%s, position %d) of %r after %d attempts: %s: %s; later events "
            "of %r park behind it until `bicameral dlq retry` or `skip`\n%s",
            reaction.name,
            env.id,
            env.type,
            env.position,
            env.subject,
            failure.attempts,
            failure.error,
            failure.message,
            env.subject,
            failure.traceback,
        )
        return Park(self.bus.service.name, reaction.name, env.subject, env, failure)

    def reset(self) -> None:
        """Stops reporting as the runner at work until the next step, and reads the parked
        streams again then (another copy may have parked)."""
        self.meter.release()
        self._parked.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Handles events until ``stop`` is set; backs off and retries on transient failures.

        A command still in conflict after its retries is retried with the whole batch (the
        inbox makes the batch's earlier commands no-ops), never dropped.
        """
        await retrying(lambda: self.step(timeout=0.5), stop, name=self.name, logger=log)
