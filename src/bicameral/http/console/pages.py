"""The console's pages as HTML: the layout around each, and the tables inside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from bicameral.envelope import Envelope
from bicameral.http.console.access import Viewer
from bicameral.http.console.html import Safe, escape, join, page, tag
from bicameral.parking import ParkedSequence
from bicameral.runtime.history import actor
from bicameral.runtime.status import RebuildStatus
from bicameral.versions import State

__all__ = [
    "event_page",
    "events_page",
    "layout",
    "overview_page",
    "parked_page",
    "rebuilds_page",
    "sign_in_page",
]

_NAV = (
    ("overview", "/console", "Overview"),
    ("events", "/console/events", "Events"),
    ("parked", "/console/parked", "Parked"),
    ("rebuilds", "/console/rebuilds", "Rebuilds"),
)
_CONSUMER_FIELDS = ("position", "head", "lag", "lag_seconds", "parked", "owner", "state")
_CONSUMER_HEADERS = ("position", "head", "lag (events)", "lag (s)", "parked", "owner", "state")


def layout(name: str, title: str, viewer: Viewer, body: Safe) -> Safe:
    """Returns page ``name`` (a nav entry) titled ``title`` around ``body``."""
    nav = join(
        tag("a", {"href": href, "aria-current": "page" if key == name else None}, text)
        for key, href, text in _NAV
    )
    who = tag("span", {"class": "who"}, "signed in as ", tag("b", None, viewer.principal.subject))
    if viewer.session is None:
        account = tag("div", {"class": "account"}, who, " (bearer token)")
    else:
        account = tag(
            "form",
            {"method": "post", "action": "/console/sign-out", "class": "account"},
            who,
            _csrf(viewer),
            tag("button", {"type": "submit", "id": "sign-out"}, "Sign out"),
        )
    return page("layout.html", page=name, title=title, nav=nav, account=account, body=body)


def sign_in_page(message: str = "", refresh: bool = False) -> Safe:
    """Returns the sign-in page, with ``message`` (why one is needed) if any; ``refresh``
    goes on to the overview from this page, so from this site: a SameSite=Strict cookie is not
    sent on a navigation that began on another site (a sign-in link clicked in a chat)."""
    note = tag("p", {"class": "message", "role": "alert"}, message) if message else Safe("")
    meta = Safe("")
    if refresh:
        meta = tag("meta", {"http-equiv": "refresh", "content": "0; url=/console"})
    return page("signin.html", message=note, refresh=meta)


def _csrf(viewer: Viewer) -> Safe:
    if viewer.session is None:
        return Safe("")
    return tag("input", {"type": "hidden", "name": "csrf", "value": viewer.csrf})


def _table(headers: Sequence[str], rows: Iterable[Safe], attrs: Mapping[str, object]) -> Safe:
    head = tag("thead", None, tag("tr", None, join(tag("th", None, h) for h in headers)))
    return tag("table", attrs, head, tag("tbody", None, join(rows)))


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
            _table(
                ["service", "roles in this process", "consumers"],
                service_rows,
                {"id": "services"},
            ),
            tag("h2", None, "Consumers"),
            _table(
                ["service", "consumer", *_CONSUMER_HEADERS],
                (_consumer_row(c) for c in consumers),
                {"id": "consumers"},
            ),
            tag("h2", None, "Worker processes (by the leases they hold)"),
            _table(["process", "roles", "partitions"], process_rows, {"id": "processes"}),
        ]
    )
    return layout("overview", "Overview", viewer, body)


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
            _table(
                ["time", "service", "position", "type", "stream", "who"], rows, {"id": "events"}
            ),
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


def _action(viewer: Viewer, seq: ParkedSequence, what: str, *fields: Safe) -> Safe:
    return tag(
        "form",
        {"method": "post", "action": f"/console/parked/{quote(seq.id, safe='')}/{what}"},
        _csrf(viewer),
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
            _table(
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
            _table(
                ["service", "projection", "version", "state", "progress", "parked"],
                rows,
                {"id": "rebuilds", "data-building": "1" if building else "0"},
            ),
            Safe("") if builds else tag("p", None, "No read model is being rebuilt."),
        ]
    )
    return layout("rebuilds", "Rebuilds", viewer, body)


def query(**values: str) -> str:
    """Returns ``?a=b`` of the non-empty ``values``."""
    given = {k: v for k, v in values.items() if v}
    return "?" + urlencode(given) if given else ""
