"""The dead-letter queue of a Node: its services' parked sequences, to list, retry and skip.

What ``bicameral dlq`` and ``/admin/dlq`` do. A sequence's consumer is found among the
services as deployed now: a projection (by its checkpoint, ``balances.v1:payments``, of the
live version or of one being built beside it) or a
reaction (by its identity, ``orders.confirm_paid``); retrying runs its events through that
code (``workers.parked.retry_sequence``), so a retry beside the live workers applies each
event once, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from bicameral.errors import ConfigurationError, InvalidMessageError, NotFoundError
from bicameral.parking import ParkedSequence, Skipped
from bicameral.projection import Projection
from bicameral.runtime.node import Node, ServiceRuntime
from bicameral.workers.parked import Handle, RetryResult, projection_handle, retry_sequence
from bicameral.workers.reactions import reaction_handle

__all__ = ["DeadLetters", "Found", "matches", "stored_version"]


def stored_version(projection: Projection, source: str, consumer: str) -> int:
    """Returns the stored version of ``projection`` over ``source`` that ``consumer`` names
    (``products.v2:inventory``), or 0 when it names none."""
    name, dot_v, rest = consumer.partition(f"{projection.name}.v")
    number, colon, tail = rest.partition(":")
    if name or not dot_v or not colon or tail != source or not number.isdigit():
        return 0
    return int(number)


def matches(consumer: str, wanted: str | None) -> bool:
    """Returns True when ``consumer`` is ``wanted``, or ``wanted`` names its projection or
    service (``balances`` matches ``balances.v1:payments``, ``orders`` every
    ``orders.<reaction>``); an empty ``wanted`` is no filter, like ``None``."""
    if not wanted or consumer == wanted:
        return True
    return consumer.startswith((f"{wanted}.", f"{wanted}:"))


@dataclass(frozen=True, slots=True)
class Found:
    """A parked sequence and the runtime of the service whose read store holds it."""

    runtime: ServiceRuntime
    sequence: ParkedSequence


class DeadLetters:
    """The parked sequences of every service ``node`` runs (its backends started)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def _runtimes(self, service: str | None = None) -> list[ServiceRuntime]:
        """Returns the runtimes of ``service`` (every one when it is None or empty);
        InvalidMessageError naming the ``service`` filter when no service has that name."""
        if service and service not in self.node.runtimes:
            known = ", ".join(sorted(self.node.runtimes))
            raise InvalidMessageError(
                f"no service {service!r} (the services: {known})",
                [{"loc": ["query", "service"], "msg": f"one of {known}", "type": "enum"}],
            )
        chosen = [rt for rt in self.node.runtimes.values() if service in (None, "", rt.name)]
        for rt in chosen:
            await rt.reads.start()  # idempotent; a command-api process has not started it
        return chosen

    async def sequences(
        self, service: str | None = None, consumer: str | None = None
    ) -> list[Found]:
        """Returns the parked sequences, oldest failure first, of a service and consumer
        (None or empty: every one); InvalidMessageError when no service has that name."""
        found = []
        for rt in await self._runtimes(service):
            for seq in await rt.reads.parked():
                if seq.service == rt.name and matches(seq.consumer, consumer):
                    found.append(Found(rt, seq))
        return sorted(found, key=lambda f: (f.sequence.first_failed, f.sequence.id))

    async def skipped(
        self, service: str | None = None, consumer: str | None = None
    ) -> list[Skipped]:
        """Returns the records of skipped sequences, oldest first."""
        found = []
        for rt in await self._runtimes(service):
            found += [
                s
                for s in await rt.reads.skipped()
                if s.service == rt.name and matches(s.consumer, consumer)
            ]
        return sorted(found, key=lambda s: s.at)

    async def find(self, sequence: str) -> Found:
        """Returns parked sequence ``sequence``; NotFoundError when no service holds it."""
        for rt in await self._runtimes():
            seq = await rt.reads.parked_sequence(sequence)
            if seq is not None and seq.service == rt.name:
                return Found(rt, seq)
        raise NotFoundError(f"no parked sequence {sequence!r}")

    async def _handle(self, found: Found) -> Handle:
        rt, consumer = found.runtime, found.sequence.consumer
        for projection in rt.service.projections:
            for source in projection.sources(rt.name):
                number = stored_version(projection, source, consumer)
                if number:  # the live version, or one being built (bicameral.versions)
                    return projection_handle(projection.at(number), rt.reads)
        for reaction in rt.service.reactions:
            if reaction.name == consumer:
                await rt.events.start()  # idempotent; a query-api process has not started it
                return reaction_handle(rt.commands, reaction)
        raise ConfigurationError(
            f"{rt.name} has no projection or reaction {consumer!r} now: deploy it, or skip "
            f"sequence {found.sequence.id}"
        )

    async def retry(self, sequence: str) -> RetryResult:
        """Runs parked ``sequence`` through the code deployed now, in order, until one fails."""
        found = await self.find(sequence)
        handle = await self._handle(found)
        return await retry_sequence(found.runtime.reads, sequence, handle)

    async def retry_all(
        self, service: str | None = None, consumer: str | None = None
    ) -> list[RetryResult]:
        """Retries every parked sequence of a service and consumer, oldest first."""
        results = []
        for found in await self.sequences(service, consumer):
            handle = await self._handle(found)
            results.append(await retry_sequence(found.runtime.reads, found.sequence.id, handle))
        return results

    async def skip(self, sequence: str, reason: str, by: str) -> Skipped:
        """Drops parked ``sequence`` on purpose, recording who, when and why."""
        if not reason.strip():
            raise InvalidMessageError(
                "a skip needs a reason",
                [{"loc": ["body", "reason"], "msg": "must not be empty", "type": "value_error"}],
            )
        found = await self.find(sequence)
        record = await found.runtime.reads.skip(sequence, reason.strip(), by)
        if record is None:
            raise NotFoundError(f"no parked sequence {sequence!r}")
        return record
