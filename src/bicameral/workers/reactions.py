"""Reactions and process managers: events from any service turned into this service's commands.

A reaction (``Service.on``) returns the commands an event calls for. The ReactionRunner sends
them on the service's own command bus under the service's identity, acting for the user who
caused the event, with an idempotency key made from the reaction and the event id: the key is
recorded in the same transaction as the command's events (the inbox), so a redelivered event
changes nothing. A process manager is an aggregate of the service (its state, correlated by
id) whose commands its reactions send; compensation is one more reaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bicameral.bus import CommandBus
from bicameral.context import MessageContext, Principal
from bicameral.envelope import Envelope
from bicameral.errors import BackendError, BicameralError, ConcurrencyError
from bicameral.messages import Command
from bicameral.service import Reaction
from bicameral.workers.feeds import Feed
from bicameral.workers.meters import Meter

__all__ = ["ReactionRunner", "service_principal"]

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


class ReactionRunner:
    """Runs the reactions of one service to one source's events, at least once, in order."""

    def __init__(
        self, bus: CommandBus, reactions: Sequence[Reaction], feed: Feed, *, batch_size: int = 100
    ) -> None:
        self.bus = bus
        self.feed = feed
        self.batch_size = batch_size
        self.by_type: dict[str, list[Reaction]] = {}
        for reaction in reactions:
            self.by_type.setdefault(reaction.event.type_name, []).append(reaction)
        self.checkpoint_name = f"reactions:{feed.source}"
        self.meter = Meter(bus.service.name, self.checkpoint_name)
        """Where this runner stands, for ``/metrics`` (the runtime registers it)."""

    async def step(self, timeout: float = 1.0) -> int:
        """Handles the next batch of events; returns how many it handled."""
        try:
            return await self._step(timeout)
        except Exception as exc:
            self.meter.failed(exc)
            raise

    async def _step(self, timeout: float) -> int:
        store = self.bus.store
        after = await store.load_checkpoint(self.checkpoint_name)
        self.meter.at(after)
        batch = await self.feed.fetch(after, self.batch_size, timeout)
        self.meter.fetched(batch)
        for env in batch:
            for reaction in self.by_type.get(env.type, ()):
                await self._react(reaction, env)
        if batch:
            await store.save_checkpoint(self.checkpoint_name, batch[-1].position)
            self.meter.handled(batch[-1].position)
            await self.feed.ack(batch)
        return len(batch)

    async def _react(self, reaction: Reaction, env: Envelope) -> None:
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
                principal=service_principal(self.bus.service.name, env),
                correlation_id=str(meta.get("correlation_id") or env.id),
                causation_id=env.id,
                traceparent=meta.get("traceparent"),
                idempotency_key=f"{reaction.name}:{env.id}:{index}",
            )
            try:
                await self.bus.dispatch(command, context)
            except (BackendError, ConcurrencyError):
                raise
            except BicameralError as exc:
                log.warning("%s: %s refused: %s", reaction.name, command.message_name, exc.detail)

    def reset(self) -> None:
        """Stops reporting as the runner at work until the next step (which reads the
        checkpoint afresh)."""
        self.meter.release()

    async def run(self, stop: asyncio.Event) -> None:
        """Handles events until ``stop`` is set; backs off and retries on backend errors.

        A command still in conflict after its retries is retried with the whole batch (the
        inbox makes the batch's earlier commands no-ops), never dropped.
        """
        while not stop.is_set():
            try:
                await self.step(timeout=0.5)
            except (BackendError, ConcurrencyError) as exc:
                log.warning("%s: %s; retrying", self.checkpoint_name, exc)
                await asyncio.sleep(1.0)
