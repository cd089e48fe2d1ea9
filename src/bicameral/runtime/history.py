"""The event logs of a Node's services read as one history: newest first, filtered, followed.

Events of different services are ordered by their time (then service and position; within a
service, position order is time order). Filters: a stream id, an event type (its full name
``inventory.StockReceived.v1``, or without the version, or the class name ``StockReceived``),
and a principal (the acting subject, or the user it acted for).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bicameral.envelope import Envelope, upcast
from bicameral.errors import BicameralError
from bicameral.messages import MessageRegistry
from bicameral.ports import EventStore
from bicameral.runtime.node import Node

__all__ = ["EventFilter", "Found", "History", "actor", "readable"]

Found = tuple[str, Envelope]
"""One event and the service whose log holds it."""

_FIRST_CHUNK = 256
_MAX_CHUNK = 8192


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to show; an empty field matches every event."""

    stream: str = ""
    type: str = ""
    principal: str = ""

    def matches(self, env: Envelope) -> bool:
        """Returns True when ``env`` passes every filter given."""
        if self.stream and env.subject != self.stream:
            return False
        if self.type and self.type not in _type_names(env.type):
            return False
        if self.principal:
            actor = env.principal
            return self.principal in (actor.get("subject"), actor.get("on_behalf_of"))
        return True


def _type_names(full: str) -> tuple[str, str, str]:
    """Returns the names an event type answers to: full, without version, class name."""
    base, dot, version = full.rpartition(".")
    unversioned = base if dot and version[:1] == "v" and version[1:].isdigit() else full
    return (full, unversioned, unversioned.rpartition(".")[2])


def _key(found: Found) -> tuple[object, str, int]:
    service, env = found
    return (env.time, service, env.position)


class History:
    """Reads the logs of every service of ``node`` (or those named in ``services``), showing
    the events ``where`` matches."""

    def __init__(
        self, node: Node, where: EventFilter | None = None, services: Collection[str] = ()
    ) -> None:
        self.stores: dict[str, EventStore] = {
            name: rt.events
            for name, rt in node.runtimes.items()
            if not services or name in services
        }
        self.filter = where or EventFilter()
        self.marks: dict[str, int] = {}
        """The head of each log as last read: ``newer`` returns events above it."""

    async def newest(self, limit: int) -> list[Found]:
        """Returns the newest ``limit`` matching events of all the logs, oldest first."""
        found: list[Found] = []
        for name, store in self.stores.items():
            self.marks[name] = await store.head()
            if limit > 0:
                found += [(name, e) for e in await self._newest_of(store, self.marks[name], limit)]
        found.sort(key=_key)
        return found[-limit:] if limit > 0 else []

    async def newer(self, batch: int = 1000) -> list[Found]:
        """Returns the matching events appended since the last read, oldest first."""
        found: list[Found] = []
        for name, store in self.stores.items():
            mark = self.marks.get(name, 0)
            while events := await store.read_all(mark, batch):
                found += [(name, e) for e in events if self.filter.matches(e)]
                mark = events[-1].position
            self.marks[name] = mark
        found.sort(key=_key)
        return found

    async def _newest_of(self, store: EventStore, head: int, limit: int) -> list[Envelope]:
        """Returns the newest ``limit`` matching events of one log up to ``head``, reading it
        backwards in growing chunks (a stream's own events when filtering by stream)."""
        if self.filter.stream:
            events = await store.read_stream(self.filter.stream)
            return [e for e in events if e.position <= head and self.filter.matches(e)][-limit:]
        found: list[Envelope] = []
        end, chunk = head, max(limit, _FIRST_CHUNK)
        while end > 0 and len(found) < limit:
            start = max(0, end - chunk)
            events = await store.read_all(start, end - start)
            found = [e for e in events if e.position <= end and self.filter.matches(e)] + found
            end, chunk = start, min(chunk * 2, _MAX_CHUNK)
        return found[-limit:]


def readable(env: Envelope, registry: MessageRegistry) -> Envelope:
    """Returns ``env`` upcast to its current class, or as stored when the code cannot read it."""
    try:
        return upcast(env, registry)
    except BicameralError:
        return env


def actor(principal: Mapping[str, Any]) -> str:
    """Returns who acted: ``subject[roles]``, and ``for <user>`` when on someone's behalf."""
    subject = str(principal.get("subject") or "-")
    roles = ",".join(principal.get("roles") or [])
    text = f"{subject}[{roles}]" if roles else subject
    if principal.get("on_behalf_of"):
        text += f" for {principal['on_behalf_of']}"
    return text
