"""The console's overview, parked events and rebuilds pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bicameral.http.console.access import Viewer
from bicameral.http.console.html import Safe, join, tag
from bicameral.http.console.layout import csrf_field, layout, table
from bicameral.parking import ParkedSequence
from bicameral.runtime.status import RebuildStatus
from bicameral.versions import State

__all__ = ["overview_page", "parked_page", "rebuilds_page"]

_CONSUMER_FIELDS = ("position", "head", "lag", "lag_seconds", "parked", "owner", "state")
_CONSUMER_HEADERS = ("position", "head", "lag (events)", "lag (s)", "parked", "owner", "state")


def _consumer_row(row: Mapping[str, Any]) -> Safe:
    cells = [tag("td", None, row["service"]), tag("td", None, row["name"])]
    cells += [tag("td", {"data-field": f}, _shown(f, row.get(f))) for f in _CONSUMER_FIELDS]
    return tag("tr", {"data-key": f"{row['service']}/{row['name']}"}, join(cells))


def _partitions(held: Mapping[str, Sequence[int]]) -> str:
    """Returns ``products.v1:inventory #0,3; ...`` (what console.js shows too)."""
    return "; ".join(
        f"{base} #{','.join(map(str, numbers))}" if numbers else base
        for base, numbers in held.items()
    )


def _shown(field: str, value: Any) -> str:
    if field == "lag_seconds":
        return f"{float(value or 0):.1f}"
    return "" if value is None else str(value)


def overview_page(
    viewer: Viewer, services: Mapping[str, Sequence[str]], reading: Mapping[str, Any]
) -> Safe:
    """Returns the overview: services, consumers with their lag (live), processes, chart."""
    consumers = reading.get("consumers", [])
    total = sum(int(c["lag"]) for c in consumers)
    service_rows = (
        tag(
            "tr",
            None,
            tag("td", None, name),
            tag("td", None, ", ".join(roles) or "none (watched from here)"),
            tag("td", None, str(sum(1 for c in consumers if c["service"] == name))),
        )
        for name, roles in services.items()
    )
    process_rows = (
        tag(
            "tr",
            None,
            tag("td", None, p["process"]),
            tag("td", None, ", ".join(p["roles"])),
            tag("td", {"class": "partitions"}, _partitions(p["partitions"])),
        )
        for p in reading.get("processes", [])
    )
    body = join(
        [
            tag(
                "section",
                {"class": "cards"},
                tag(
                    "div",
                    {"class": "card"},
                    tag("span", None, "events behind, all consumers"),
                    tag("output", {"id": "lag-total"}, str(total)),
                ),
                tag(
                    "div",
                    {"class": "card"},
                    tag("span", None, "updated"),
                    tag("output", {"id": "updated"}, "now"),
                ),
            ),
            tag("h2", None, "Lag over time (events behind, per service)"),
            tag(
                "svg",
                {
                    "id": "lag-chart",
                    "viewBox": "0 0 600 140",
                    "role": "img",
                    "aria-label": "lag over time",
                },
            ),
            tag("div", {"id": "lag-legend", "class": "legend"}),
            tag("h2", None, "Services"),
            table(
                ["service", "roles in this process", "consumers"],
                service_rows,
                {"id": "services"},
            ),
            tag("h2", None, "Consumers"),
            table(
                ["service", "consumer", *_CONSUMER_HEADERS],
                (_consumer_row(c) for c in consumers),
                {"id": "consumers"},
            ),
            tag("h2", None, "Worker processes (by the leases they hold)"),
            table(["process", "roles", "partitions"], process_rows, {"id": "processes"}),
        ]
    )
    return layout("overview", "Overview", viewer, body)


def _action(viewer: Viewer, seq: ParkedSequence, what: str, *fields: Safe) -> Safe:
    return tag(
        "form",
        {"method": "post", "action": f"/console/parked/{quote(seq.id, safe='')}/{what}"},
        csrf_field(viewer),
        join(fields),
        tag("button", {"type": "submit", "class": what}, what.capitalize()),
    )


def parked_page(viewer: Viewer, parked: Sequence[ParkedSequence], message: str) -> Safe:
    """Returns the parked sequences, each with retry and skip buttons."""
    reason = tag(
        "input", {"name": "reason", "placeholder": "why skip", "required": True, "size": "14"}
    )
    rows = (
        tag(
            "tr",
            {"data-sequence": seq.id},
            tag("td", None, seq.service),
            tag("td", None, seq.consumer),
            tag("td", None, seq.key),
            tag("td", None, str(len(seq.events))),
            tag("td", None, seq.events[0].type if seq.events else "-"),
            tag("td", {"title": seq.message}, seq.error),
            tag("td", None, str(seq.attempts)),
            tag(
                "td",
                {"class": "actions"},
                _action(viewer, seq, "retry"),
                _action(viewer, seq, "skip", reason),
            ),
        )
        for seq in parked
    )
    body = join(
        [
            tag("p", {"class": "message", "role": "status"}, message) if message else Safe(""),
            table(
                ["service", "consumer", "stream", "events", "first type", "error", "attempts", ""],
                rows,
                {"id": "parked"},
            ),
            Safe("") if parked else tag("p", None, "Nothing is parked."),
        ]
    )
    return layout("parked", "Parked events", viewer, body)


def rebuilds_page(viewer: Viewer, builds: Sequence[RebuildStatus]) -> Safe:
    """Returns the versions being built (or failed), with their progress."""
    rows = (
        tag(
            "tr",
            None,
            tag("td", None, b.service),
            tag("td", None, b.version.name),
            tag("td", None, f"v{b.version.number} (live: v{b.live})"),
            tag("td", None, b.version.state.name.lower()),
            tag(
                "td",
                None,
                tag("progress", {"max": b.progress.total or 1, "value": b.progress.done}),
                f" {b.progress.fraction:.0%}",
            ),
            tag("td", None, str(b.parked)),
        )
        for b in builds
    )
    building = any(b.version.state == State.BUILDING for b in builds)
    body = join(
        [
            table(
                ["service", "projection", "version", "state", "progress", "parked"],
                rows,
                {"id": "rebuilds", "data-building": "1" if building else "0"},
            ),
            Safe("") if builds else tag("p", None, "No read model is being rebuilt."),
        ]
    )
    return layout("rebuilds", "Rebuilds", viewer, body)
