"""What one PlaceOrder's trace must hold, checked on spans however they were collected (the SDK's
in-memory exporter, or OTLP requests a test received)."""

from __future__ import annotations

from dataclasses import dataclass, field

PLACE = "POST /orders/commands/PlaceOrder"
STEPS = [
    # (span, its parent, the service whose process makes it)
    ("command PlaceOrder", PLACE, "orders"),
    ("append orders", "command PlaceOrder", "orders"),
    ("react inventory.reserve_placed", "command PlaceOrder", "inventory"),
    ("command ReserveStock", "react inventory.reserve_placed", "inventory"),
    ("react orders.record_reserved", "command ReserveStock", "orders"),
    ("command RecordReservation", "react orders.record_reserved", "orders"),
    ("react payments.charge_reserved_order", "command RecordReservation", "payments"),
    ("command ChargeCustomer", "react payments.charge_reserved_order", "payments"),
    ("react orders.confirm_paid", "command ChargeCustomer", "orders"),
    ("command ConfirmOrder", "react orders.confirm_paid", "orders"),
    ("react inventory.sell_confirmed", "command ConfirmOrder", "inventory"),
    ("command SellStock", "react inventory.sell_confirmed", "inventory"),
]
"""The order flow, span by span: each reaction is a child of the command whose event it
handles, each command a reaction sends a child of the reaction."""
LAST = STEPS[-1][0]


@dataclass(frozen=True)
class Span:
    """A finished span, as far as these checks need it."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    service: str
    """The ``service.name`` of the process that made it."""
    links: list[tuple[int, int]] = field(default_factory=list)
    """The (trace id, span id) of each link."""


def place_order_trace(spans: list[Span]) -> list[Span]:
    """Returns the spans of the PlaceOrder request's trace (empty before it is finished)."""
    roots = [s for s in spans if s.name == PLACE]
    if not roots:
        return []
    return [s for s in spans if s.trace_id == roots[-1].trace_id]


def render(spans: list[Span]) -> str:
    """Returns ``spans`` as an indented tree, each span under its parent, for failure messages."""
    by_id = {s.span_id: s for s in spans}

    def depth(span: Span) -> int:
        found = 0
        while span.parent_id in by_id:
            span, found = by_id[span.parent_id], found + 1
        return found

    return "\n".join(f"{'  ' * depth(s)}{s.name} [{s.service}]" for s in spans)


def check_order_trace(spans: list[Span], *, services: bool = True) -> None:
    """Asserts that one trace follows the order through the three services, that the relays
    published in it (or linked to it) and that projector batches link to it; with
    ``services``, that each span came from its service's process."""
    trace = place_order_trace(spans)
    assert trace, f"no {PLACE} span among {sorted({s.name for s in spans})}"
    by_name: dict[str, list[Span]] = {}
    for span in trace:
        by_name.setdefault(span.name, []).append(span)
    (root,) = by_name[PLACE]
    tree = render(trace)
    for name, parent, service in STEPS:
        assert name in by_name, f"no {name!r} in the trace:\n{tree}"
        parents = {s.span_id for s in by_name[parent]}
        assert any(s.parent_id in parents for s in by_name[name]), f"{name} not under {parent}"
        if services:
            assert {s.service for s in by_name[name]} == {service}, name
    assert root.service == "orders" or not services
    traced = {(s.trace_id, s.span_id) for s in trace}
    for service in ("orders", "inventory", "payments"):
        # in the trace, or linked to it when a batch began with another request's event
        assert any(
            s.name == f"publish {service}" and (s in trace or traced & set(s.links)) for s in spans
        ), f"{service}'s relay did not publish in the trace"
    batches = [s for s in spans if s.name.startswith("project ") and traced & set(s.links)]
    assert batches, "no projector batch links to the trace"
    if services:
        assert {b.service for b in batches} == {"orders", "inventory", "payments"}
