"""Parked events: what a consumer could not handle, kept in order until retried or skipped.

A consumer is a projection reading one source (named by its checkpoint, ``balances.v1:payments``)
or a reaction (named by its identity). When its handler, the decoding of a stored event or the
storing of a read-model document fails with a *poison* failure (anything but a transient one,
``workers.retry.TRANSIENT``: a backend away, a timeout), the event is tried a few more times,
then **parked**: written, with the failure, in the consumer's own read store in the same atomic
commit that moves its checkpoint past it.

Parked events form **sequences**, one per consumer and key (the event's stream, or a
projection's partition key): once an event of a key is parked, every later event of that key
the consumer receives joins the sequence behind it, so the key's order is kept, while other
keys go on. A sequence stays until it is retried through the code deployed now (``unpark``,
one event at a time, in order) or skipped on purpose (``skip``, recorded with who, when and why).
"""

from __future__ import annotations

import hashlib
import traceback as tb
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bicameral.envelope import Envelope, decode, encode

__all__ = [
    "Failure",
    "Park",
    "ParkedSequence",
    "Skipped",
    "event_of",
    "event_text",
    "sequence_id",
]


def _now() -> datetime:
    return datetime.now(UTC)


def sequence_id(service: str, consumer: str, event_id: str) -> str:
    """Returns the id of the sequence a consumer opens by parking event ``event_id``."""
    raw = f"{service}\0{consumer}\0{event_id}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an event was parked: the exception, its traceback, and how many tries failed."""

    error: str
    message: str
    traceback: str = ""
    attempts: int = 1
    at: datetime = field(default_factory=_now)

    @classmethod
    def of(cls, exc: BaseException, attempts: int = 1) -> Failure:
        """Returns the failure ``exc`` describes, after ``attempts`` failed tries."""
        kind = type(exc)
        name = kind.__qualname__
        if kind.__module__ not in ("builtins", "__main__"):
            name = f"{kind.__module__}.{name}"
        text = "".join(tb.format_exception(exc))
        return cls(name, str(exc) or kind.__name__, text, attempts)


@dataclass(frozen=True, slots=True)
class Park:
    """One event to park in a commit: it opens a sequence (with a failure) or joins one."""

    service: str
    consumer: str
    key: str
    envelope: Envelope
    failure: Failure | None = None

    @property
    def sequence(self) -> str:
        """Returns the id of the sequence this park opens (when it carries a failure)."""
        return sequence_id(self.service, self.consumer, self.envelope.id)

    def header(self) -> dict[str, Any]:
        """Returns the stored fields of the sequence this park opens."""
        failure = self.failure or Failure("", "")
        at = failure.at.isoformat()
        return {
            "id": self.sequence,
            "service": self.service,
            "consumer": self.consumer,
            "key": self.key,
            "error": failure.error,
            "message": failure.message,
            "traceback": failure.traceback,
            "attempts": failure.attempts,
            "first_failed": at,
            "last_failed": at,
        }


@dataclass(frozen=True, slots=True)
class ParkedSequence:
    """The parked events of one consumer and key, in order, and their last failure."""

    id: str
    service: str
    consumer: str
    key: str
    events: tuple[Envelope, ...]
    error: str
    message: str
    traceback: str
    attempts: int
    first_failed: datetime
    last_failed: datetime

    @property
    def first_position(self) -> int:
        """Returns the position of the first parked event (0 when there is none)."""
        return self.events[0].position if self.events else 0

    @property
    def event_type(self) -> str:
        """Returns the type of the first parked event."""
        return self.events[0].type if self.events else ""

    def summary(self) -> dict[str, Any]:
        """Returns the sequence as one JSON line of ``dlq list``."""
        return {
            "id": self.id,
            "service": self.service,
            "consumer": self.consumer,
            "stream": self.key,
            "first_position": self.first_position,
            "events": len(self.events),
            "event_type": self.event_type,
            "error": self.error,
            "message": self.message,
            "attempts": self.attempts,
            "first_failed": self.first_failed.isoformat(),
            "last_failed": self.last_failed.isoformat(),
        }

    @classmethod
    def of(cls, header: Mapping[str, Any], events: Sequence[Envelope]) -> ParkedSequence:
        """Returns the sequence made of stored ``header`` fields and its events."""
        return cls(
            id=str(header["id"]),
            service=str(header["service"]),
            consumer=str(header["consumer"]),
            key=str(header["key"]),
            events=tuple(events),
            error=str(header["error"]),
            message=str(header["message"]),
            traceback=str(header["traceback"]),
            attempts=int(header["attempts"]),
            first_failed=_time(header["first_failed"]),
            last_failed=_time(header["last_failed"]),
        )


@dataclass(frozen=True, slots=True)
class Skipped:
    """The audit record of a sequence skipped on purpose: what was dropped, by whom and why."""

    id: str
    service: str
    consumer: str
    key: str
    event_ids: tuple[str, ...]
    first_position: int
    last_position: int
    error: str
    message: str
    reason: str
    by: str
    at: datetime

    @classmethod
    def of(cls, sequence: ParkedSequence, reason: str, by: str, at: datetime) -> Skipped:
        """Returns the record of skipping ``sequence``."""
        return cls(
            sequence.id,
            sequence.service,
            sequence.consumer,
            sequence.key,
            tuple(e.id for e in sequence.events),
            sequence.first_position,
            sequence.events[-1].position if sequence.events else 0,
            sequence.error,
            sequence.message,
            reason,
            by,
            at,
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns the record as JSON-ready fields."""
        return {
            "id": self.id,
            "service": self.service,
            "consumer": self.consumer,
            "stream": self.key,
            "events": len(self.event_ids),
            "event_ids": list(self.event_ids),
            "first_position": self.first_position,
            "last_position": self.last_position,
            "error": self.error,
            "message": self.message,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Skipped:
        """Returns the record of fields made by ``to_dict``."""
        return cls(
            str(doc["id"]),
            str(doc["service"]),
            str(doc["consumer"]),
            str(doc["stream"]),
            tuple(str(i) for i in doc["event_ids"]),
            int(doc["first_position"]),
            int(doc["last_position"]),
            str(doc["error"]),
            str(doc["message"]),
            str(doc["reason"]),
            str(doc["by"]),
            _time(doc["at"]),
        )


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    found = datetime.fromisoformat(str(value))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def event_text(envelope: Envelope) -> str:
    """Returns a parked event as stored (its CloudEvents JSON)."""
    return encode(envelope).decode()


def event_of(text: str | bytes) -> Envelope:
    """Returns the parked event stored as ``text``."""
    return decode(text)
