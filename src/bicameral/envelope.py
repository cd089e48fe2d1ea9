"""The Envelope: one stored event with its place in the log, and its CloudEvents 1.0 JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from bicameral.context import new_id
from bicameral.errors import InvalidMessageError
from bicameral.messages import Event, MessageRegistry

__all__ = [
    "Envelope",
    "NewEvent",
    "decode",
    "encode",
    "from_cloudevent",
    "to_cloudevent",
    "upcast",
]

_META_ATTRS = {
    "correlation_id": "correlationid",
    "causation_id": "causationid",
    "traceparent": "traceparent",
    "tracestate": "tracestate",
    "stored_type": "storedtype",
}


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: its type, data and metadata, before it has a position."""

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)

    @classmethod
    def of(cls, event: Event, metadata: dict[str, Any] | None = None) -> NewEvent:
        """Returns the NewEvent for a domain event."""
        return cls(event.type_name, event.model_dump(mode="json"), metadata or {})


@dataclass(frozen=True, slots=True)
class Envelope:
    """A committed event: ``position`` orders the service's log, ``stream_version`` its stream."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    stream_version: int
    position: int
    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def principal(self) -> dict[str, Any]:
        """Returns the acting principal recorded in the metadata (empty if none)."""
        value = self.metadata.get("principal")
        return value if isinstance(value, dict) else {}


def upcast(env: Envelope, registry: MessageRegistry, *, mark: bool = False) -> Envelope:
    """Returns ``env`` as the current version of its event (``env`` itself when it is already).

    With ``mark``, an upcast envelope's metadata keeps the stored type as ``stored_type``
    (the ``storedtype`` attribute of its CloudEvent).
    """
    type_name, data = registry.upcast(env.type, env.data)
    if type_name == env.type:
        return env
    metadata = {**env.metadata, "stored_type": env.type} if mark else env.metadata
    return replace(env, type=type_name, data=data, metadata=metadata)


def to_cloudevent(env: Envelope) -> dict[str, Any]:
    """Returns the CloudEvents 1.0 JSON document of ``env``."""
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": env.id,
        "type": env.type,
        "source": env.source,
        "subject": env.subject,
        "time": env.time.isoformat(),
        "datacontenttype": "application/json",
        "position": env.position,
        "streamversion": env.stream_version,
        "data": env.data,
    }
    for key, attr in _META_ATTRS.items():
        if env.metadata.get(key) is not None:
            doc[attr] = str(env.metadata[key])
    extra = {k: v for k, v in env.metadata.items() if k not in _META_ATTRS}
    if extra:
        doc["bicameralmeta"] = orjson.dumps(extra).decode()
    return doc


def from_cloudevent(doc: dict[str, Any]) -> Envelope:
    """Returns the Envelope of a CloudEvents 1.0 JSON document made by ``to_cloudevent``."""
    try:
        if doc["specversion"] != "1.0":
            raise InvalidMessageError(f"unsupported specversion {doc['specversion']!r}")
        metadata: dict[str, Any] = {}
        if "bicameralmeta" in doc:
            metadata.update(orjson.loads(doc["bicameralmeta"]))
        for key, attr in _META_ATTRS.items():
            if attr in doc:
                metadata[key] = doc[attr]
        time = datetime.fromisoformat(doc["time"])
        return Envelope(
            id=str(doc["id"]),
            type=str(doc["type"]),
            source=str(doc["source"]),
            subject=str(doc["subject"]),
            time=time if time.tzinfo else time.replace(tzinfo=UTC),
            stream_version=int(doc["streamversion"]),
            position=int(doc["position"]),
            data=dict(doc["data"]),
            metadata=metadata,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidMessageError(f"not a bicameral CloudEvent: {exc}") from None


def encode(env: Envelope) -> bytes:
    """Returns the CloudEvents JSON bytes of ``env``."""
    return orjson.dumps(to_cloudevent(env))


def decode(raw: bytes | str) -> Envelope:
    """Returns the Envelope of CloudEvents JSON bytes."""
    return from_cloudevent(orjson.loads(raw))
