"""The console's event log pages: the events, newest first, and one event with who did it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from bicameral.envelope import Envelope
from bicameral.http.console.access import Viewer
from bicameral.http.console.html import Safe, escape, join, tag
from bicameral.http.console.layout import layout, query, table
from bicameral.runtime.history import actor

__all__ = ["event_page", "events_page"]


def _who(principal: Mapping[str, Any]) -> Safe:
    """Returns who acted, linked to the events done by or for the same user."""
    user = principal.get("on_behalf_of") or principal.get("subject")
    if not user:
        return escape(actor(principal))
    href = "/console/events" + query(principal=str(user))
    return tag("a", {"href": href, "title": f"events by or for {user}"}, actor(principal))


def _event_href(service: str, position: int) -> str:
    return f"/console/events/{quote(service, safe='')}/{position}"


def events_page(
    viewer: Viewer,
    services: Sequence[str],
    filters: Mapping[str, str],
    limit: int,
    found: Sequence[tuple[str, Envelope]],
) -> Safe:
    """Returns the event log, newest first, with the filter form."""
    choices = [tag("option", {"value": ""}, "every service")] + [
        tag("option", {"value": s, "selected": s == filters.get("service")}, s) for s in services
    ]
    inputs = [
        tag("label", None, "service ", tag("select", {"name": "service"}, join(choices))),
        *(
            tag(
                "label",
                None,
                f"{name} ",
                tag("input", {"name": name, "value": filters.get(name, ""), "size": "18"}),
            )
            for name in ("stream", "type", "principal")
        ),
        tag(
            "label",
            None,
            "limit ",
            tag("input", {"name": "limit", "value": limit, "type": "number", "min": 1}),
        ),
        tag("button", {"type": "submit"}, "Filter"),
    ]
    rows = (
        tag(
            "tr",
            None,
            tag("td", None, f"{env.time:%Y-%m-%d %H:%M:%S.%f}"[:-3]),
            tag("td", None, service),
            tag("td", None, tag("a", {"href": _event_href(service, env.position)}, env.position)),
            tag("td", None, env.type),
            tag("td", None, env.subject),
            tag("td", {"class": "actor"}, _who(env.principal)),
        )
        for service, env in found
    )
    body = join(
        [
            tag(
                "form",
                {"method": "get", "action": "/console/events", "class": "filters"},
                join(inputs),
            ),
            table(["time", "service", "position", "type", "stream", "who"], rows, {"id": "events"}),
            Safe("") if found else tag("p", None, "No event matches."),
        ]
    )
    return layout("events", "Events", viewer, body)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def event_page(viewer: Viewer, service: str, env: Envelope, stored_type: str) -> Safe:
    """Returns one event: who did it (principal, on behalf of), its payload and metadata."""
    principal = env.principal
    facts = [
        ("service", service),
        ("position", str(env.position)),
        ("type", env.type + (f" (stored as {stored_type})" if stored_type != env.type else "")),
        ("stream", f"{env.subject} (version {env.stream_version})"),
        ("time", env.time.isoformat()),
        ("id", env.id),
        ("principal", str(principal.get("subject") or "-")),
        ("roles", ", ".join(principal.get("roles") or []) or "-"),
        ("acting service", str(principal.get("service") or "-")),
        ("on behalf of", str(principal.get("on_behalf_of") or "-")),
        ("correlation id", str(env.metadata.get("correlation_id") or "-")),
        ("causation id", str(env.metadata.get("causation_id") or "-")),
    ]
    body = join(
        [
            tag(
                "dl",
                {"id": "event-facts"},
                join(
                    tag("div", {"data-fact": k}, tag("dt", None, k), tag("dd", None, v))
                    for k, v in facts
                ),
            ),
            tag("h2", None, "Payload"),
            tag("pre", {"id": "payload"}, _json(env.data)),
            tag("h2", None, "Metadata"),
            tag("pre", {"id": "metadata"}, _json(env.metadata)),
            tag("p", None, tag("a", {"href": "/console/events"}, "Back to the events")),
        ]
    )
    return layout("events", f"{service} event {env.position}", viewer, body)
