"""The shop, plus one probe projection per service recording the order its events are folded in.

The probe keeps, per stream, the stream versions in the order they were applied, so a test can
see that every event was applied exactly once and in stream order, however the projector
processes were killed, restarted and rebalanced meanwhile.
"""

from __future__ import annotations

import dataclasses

from bicameral import Envelope, Event, Projection, Service, View
from shop.app import services as shop_services

__all__ = ["PROBE", "services"]

PROBE = "e2e_probe"


def _event_classes(service: str) -> list[type[Event]]:
    found: list[type[Event]] = []
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.message_name.partition(".")[0] == service:
            found.append(cls)
    return sorted(set(found), key=lambda c: c.type_name)


async def _record(event: Event, view: View, envelope: Envelope) -> None:
    doc = await view.get("streams", envelope.subject) or {"versions": []}
    doc["versions"].append(envelope.stream_version)
    view.put("streams", envelope.subject, doc)


def _probe(service: Service) -> Projection:
    probe = Projection(PROBE, collections={"streams": []})
    for cls in _event_classes(service.name):
        probe.on(cls)(_record)
    return probe


def services() -> list[Service]:
    """Returns copies of the shop's services, each with its probe projection added."""
    found = []
    for service in shop_services():
        copy = dataclasses.replace(service, projections=list(service.projections))
        copy.projection(_probe(service))
        found.append(copy)
    return found
