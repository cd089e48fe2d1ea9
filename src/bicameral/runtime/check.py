"""Checks that the code can read every event type stored in the services' logs.

A type the code cannot read is either stored under a name no class is registered under any
more, or under a version with no chain of upcasters to the current class (or a version newer
than the code's). The second kind would fail the first read of such an event, so a node
refuses to start on it; ``bicameral check`` lists both kinds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bicameral.errors import ConfigurationError
from bicameral.ports import EventStore
from bicameral.service import Service

__all__ = ["Unreadable", "refuse_unreadable", "unreadable_types"]

log = logging.getLogger("bicameral.check")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """One stored event type the code cannot read, and why."""

    service: str
    type: str
    reason: str

    @property
    def known_name(self) -> bool:
        """Returns True when a class is registered under the type's name (a version problem)."""
        return not self.reason.startswith("no class")

    def __str__(self) -> str:
        return f"{self.service}: {self.type} ({self.reason})"


async def unreadable_types(service: Service, events: EventStore) -> list[Unreadable]:
    """Returns the event types in ``service``'s own log it cannot read, by type."""
    found = service.registry.unreadable(await events.event_types())
    return [Unreadable(service.name, t, reason) for t, reason in sorted(found.items())]


async def refuse_unreadable(service: Service, events: EventStore) -> None:
    """Raises ConfigurationError naming the stored versions the code cannot upcast.

    Types whose name no class is registered under only warn: nothing of this service reads
    them unless an aggregate's stream holds them.
    """
    found = await unreadable_types(service, events)
    for item in found:
        if not item.known_name:
            log.warning("%s: the log holds events the code does not know: %s", item.service, item)
    fatal = [str(item) for item in found if item.known_name]
    if fatal:
        raise ConfigurationError(
            "the event log holds event types this code cannot read: "
            + "; ".join(fatal)
            + " (declare upcasters with Service.upcaster, then run bicameral check)"
        )
