"""Retrying a parked sequence through the code deployed now, in order, each event once.

Each event is settled with one ``ReadStore.unpark``: a compare-and-set on the sequence's first
event, in the same atomic step as the event's read-model changes. A retry running beside the
live consumer, or beside another retry, therefore never applies an event twice or out of
order: the live consumer parks a key's events behind the sequence until it is empty (and a
park joining a sequence emptied meanwhile is refused, so it folds the event live instead),
and of two retries of one event only one unparks it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bicameral.envelope import Envelope
from bicameral.parking import Failure
from bicameral.ports import Changes, ReadStore
from bicameral.projection import Projection, View
from bicameral.workers.retry import TRANSIENT

__all__ = ["Handle", "RetryResult", "projection_handle", "retry_sequence"]

Handle = Callable[[Envelope], Awaitable[Changes]]
"""Handles one parked event again: returns the read-model changes to write with its unpark."""


@dataclass(frozen=True, slots=True)
class RetryResult:
    """What a retry did: the events it applied, those still parked, and the new failure."""

    sequence: str
    applied: int
    left: int
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        """Returns True when nothing of the sequence is left parked."""
        return self.left == 0


def projection_handle(projection: Projection, store: ReadStore) -> Handle:
    """Returns the handle that folds one event of ``projection`` over ``store``'s documents."""

    async def handle(envelope: Envelope) -> Changes:
        view = View(projection, store)
        await projection.apply(envelope, view)
        return view.changes

    return handle


async def retry_sequence(store: ReadStore, sequence: str, handle: Handle) -> RetryResult:
    """Runs the events of parked ``sequence`` through ``handle``, in order, until one fails.

    Each event that succeeds is removed with its changes; the first that fails stays, with
    its attempts counted and its failure recorded, and so do the events behind it. A backend
    error is raised (nothing of that event is written). Events parked behind while the retry
    runs are retried too.
    """
    applied = 0
    while True:
        found = await store.parked_sequence(sequence)
        if found is None or not found.events:
            return RetryResult(sequence, applied, 0)
        for index, envelope in enumerate(found.events):
            try:
                changes = await handle(envelope)
                done = await store.unpark(sequence, envelope.id, changes)
            except Exception as exc:
                if isinstance(exc, TRANSIENT):
                    raise
                failure = Failure.of(exc)
                if not await store.unpark(sequence, envelope.id, {}, failure):
                    break  # the sequence moved meanwhile: read it again
                return RetryResult(sequence, applied, len(found.events) - index, failure)
            if not done:
                break  # another retry settled it, or the sequence was skipped: read it again
            applied += 1
