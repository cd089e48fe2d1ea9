"""Tracing: off unless asked, W3C context carried in event metadata and CloudEvents, a span for
each step (command, append, publish, projector batch, reaction) and ids on log lines."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bicameral import CommandBus, MessageContext, tracing
from bicameral.envelope import Envelope, from_cloudevent, to_cloudevent
from bicameral.errors import ConfigurationError
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.logs import configure_logging
from bicameral.runtime.tracing import _exporter, start_tracing, wanted
from bicameral.testing.tracing import record_spans
from bicameral.transport.memory import MemoryTransport
from bicameral.workers.feeds import LogFeed
from bicameral.workers.projector import Projector
from bicameral.workers.reactions import react
from bicameral.workers.relay import Relay
from shop.inventory.messages import RegisterProduct
from shop.inventory.projections import products
from shop.inventory.service import inventory
from shop.orders.messages import OrderLine, OrderPlaced

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with record_spans() as exporter:
        yield exporter


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (found,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return found


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def traceparent_of(span: ReadableSpan) -> str:
    trace_id, span_id = ids(span)
    return f"00-{trace_id:032x}-{span_id:016x}-01"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_SERVICE_NAME": "orders"}, True),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "orders"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_PROPAGATORS": "tracecontext"}, False),
    ],
)
def test_tracing_is_on_only_when_an_otel_variable_asks_for_it(
    environ: dict[str, str], on: bool
) -> None:
    assert wanted(environ) is on


def test_an_unknown_exporter_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no span exporter 'zipkin'"):
        _exporter("zipkin", {})


def test_asking_for_traces_without_the_sdk_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.resources", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'bicameral\[tracing\]'"):
        start_tracing("orders", {"OTEL_SERVICE_NAME": "orders"})
    assert not tracing.enabled()


def test_a_process_with_no_otel_variable_installs_no_tracer_provider() -> None:
    probe = (
        "from bicameral.runtime.tracing import start_tracing; from bicameral import tracing;"
        "from opentelemetry import trace;"
        "print(start_tracing('orders', {}), tracing.enabled(), type(trace.get_tracer_provider())"
        ".__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["False", "False", "ProxyTracerProvider"]


def test_the_otel_variables_install_the_sdk_with_the_service_as_its_resource() -> None:
    probe = (
        "from bicameral.runtime.tracing import start_tracing; from bicameral import tracing;"
        "from opentelemetry import trace;"
        "on = start_tracing('orders');"
        "p = trace.get_tracer_provider();"
        "print(on, tracing.enabled(), type(p).__name__, p.resource.attributes['service.name'])"
    )
    env = {"PATH": "/usr/bin", "OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_SCHEDULE_DELAY": "10"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.stdout.split() == ["True", "True", "TracerProvider", "orders"], done.stderr


async def test_with_tracing_off_a_command_makes_no_span_and_keeps_the_callers_traceparent() -> None:
    assert not tracing.enabled()
    bus = CommandBus(inventory, MemoryEventStore("inventory"))
    await bus.dispatch(RegisterProduct(sku="p1", name="Pen", price_cents=1), ctx(PARENT))
    (env,) = await bus.store.read_all(0, 10)
    assert env.metadata["traceparent"] == PARENT
    assert "tracestate" not in env.metadata
    assert not trace.get_current_span().get_span_context().is_valid


def ctx(traceparent: str | None = None) -> MessageContext:
    return MessageContext(traceparent=traceparent)


async def test_a_command_is_a_span_its_append_a_child_and_its_events_carry_its_context(
    spans: InMemorySpanExporter,
) -> None:
    store = MemoryEventStore("inventory")
    bus = CommandBus(inventory, store)
    parent = tracing.context_of({"traceparent": PARENT, "tracestate": "vendor=1"})
    with tracing.span("request", parent=parent):
        await bus.dispatch(RegisterProduct(sku="p1", name="Pen", price_cents=1), ctx(PARENT))
    command, append = named(spans, "command RegisterProduct"), named(spans, "append inventory")
    assert ids(command)[0] == TRACE_ID
    assert parent_of(append) == ids(command)[1]
    assert command.attributes is not None
    assert command.attributes["bicameral.service"] == "inventory"
    (env,) = await store.read_all(0, 10)
    assert env.metadata["traceparent"] == traceparent_of(command)
    assert env.metadata["tracestate"] == "vendor=1"


async def test_a_refused_command_is_an_outcome_not_an_error(
    spans: InMemorySpanExporter,
) -> None:
    bus = CommandBus(inventory, MemoryEventStore("inventory"))
    register = RegisterProduct(sku="p1", name="Pen", price_cents=1)
    await bus.dispatch(register, ctx())
    with pytest.raises(Exception, match="already"):
        await bus.dispatch(register, ctx())
    refused = spans.get_finished_spans()[-1]
    assert refused.name == "command RegisterProduct"
    assert refused.attributes is not None
    assert refused.attributes["bicameral.outcome"] != "ok"
    assert refused.status.status_code == StatusCode.UNSET


def test_trace_context_survives_the_cloudevent_form() -> None:
    env = Envelope(
        "e1",
        "orders.OrderPlaced.v1",
        "orders",
        "order-1",
        datetime(2026, 1, 1, tzinfo=UTC),
        1,
        1,
        {},
        {"traceparent": PARENT, "tracestate": "vendor=1"},
    )
    doc = to_cloudevent(env)
    assert (doc["traceparent"], doc["tracestate"]) == (PARENT, "vendor=1")
    assert "bicameralmeta" not in doc
    assert from_cloudevent(doc).metadata == env.metadata


@pytest.mark.parametrize(
    "metadata",
    [{}, {"traceparent": ""}, {"traceparent": "00-abc-def-01"}, {"traceparent": "t" * 300}],
)
def test_missing_or_invalid_trace_context_is_ignored(metadata: dict[str, str]) -> None:
    assert tracing.context_of(metadata) is None
    assert tracing.links_to([metadata]) == []


def test_links_go_to_each_distinct_context_once() -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    links = tracing.links_to([{"traceparent": PARENT}, {"traceparent": other}, {}] * 3)
    assert [link.context.trace_id for link in links] == [
        TRACE_ID,
        0x11111111111111111111111111111111,
    ]
    parent = tracing.context_of({"traceparent": PARENT})
    rest = tracing.links_to([{"traceparent": PARENT}, {"traceparent": other}], parent)
    assert [link.context.span_id for link in rest] == [0x2222222222222222]


def placed(position: int, traceparent: str) -> Envelope:
    event = OrderPlaced(
        order_id=f"o{position}",
        customer_id="c1",
        lines=[OrderLine(sku="p1", quantity=1)],
    )
    return Envelope(
        f"e{position}",
        OrderPlaced.type_name,
        "orders",
        f"order-o{position}",
        datetime(2026, 1, 1, tzinfo=UTC),
        1,
        position,
        event.model_dump(mode="json"),
        {"traceparent": traceparent, "correlation_id": "c", "principal": {"subject": "u"}},
    )


async def test_a_reaction_continues_the_events_trace_and_its_command_is_its_child(
    spans: InMemorySpanExporter,
) -> None:
    store = MemoryEventStore("inventory")
    bus = CommandBus(inventory, store)
    (reaction,) = [r for r in inventory.reactions if r.name == "inventory.reserve_placed"]
    await react(bus, reaction, placed(1, PARENT))
    reacted = named(spans, "react inventory.reserve_placed")
    command = named(spans, "command ReserveStock")
    assert reacted.kind == SpanKind.CONSUMER
    assert ids(reacted)[0] == TRACE_ID
    assert parent_of(reacted) == 0xB7AD6B7169203331
    assert parent_of(command) == ids(reacted)[1]
    (refused,) = await store.read_all(0, 10)  # no stock: the reservation is refused
    assert refused.metadata["traceparent"] == traceparent_of(command)


async def two_requests() -> MemoryEventStore:
    """Returns a log of two products registered by requests ``request a`` and ``request b``."""
    store = MemoryEventStore("inventory")
    bus = CommandBus(inventory, store)
    for sku in ("a", "b"):
        with tracing.span(f"request {sku}"):
            await bus.dispatch(RegisterProduct(sku=sku, name=sku, price_cents=1), ctx())
    return store


async def test_the_relay_publishes_in_the_first_events_trace_linked_to_the_others(
    spans: InMemorySpanExporter,
) -> None:
    store = await two_requests()
    transport = MemoryTransport()
    await Relay(store, transport).step(timeout=0)
    publish = named(spans, "publish inventory")
    first, second = (named(spans, f"request {sku}") for sku in ("a", "b"))
    assert publish.kind == SpanKind.PRODUCER
    assert ids(publish)[0] == ids(first)[0]
    assert [link.context.trace_id for link in publish.links] == [ids(second)[0]]


async def test_a_projector_batch_is_a_span_linked_to_its_events_traces(
    spans: InMemorySpanExporter,
) -> None:
    store = await two_requests()
    feed = LogFeed("inventory", store, inventory.registry)
    projector = Projector(products, feed, MemoryReadStore(), service="inventory")
    assert await projector.catch_up() == 2
    batch = named(spans, f"project {projector.checkpoint_name}")
    requests = {ids(named(spans, f"request {sku}"))[0] for sku in ("a", "b")}
    assert batch.parent is None
    assert {link.context.trace_id for link in batch.links} == requests
    assert batch.attributes is not None
    assert batch.attributes["bicameral.events"] == 2


def test_log_lines_carry_the_ids_of_the_active_span(spans: InMemorySpanExporter) -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(stream=out)
        log = logging.getLogger("bicameral.test")
        log.info("outside")
        with tracing.span("work") as span:
            log.info("inside")
            structlog.get_logger().info("inside too")
        context = span.get_span_context()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
    outside, inside, inside_too = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside
    for line in (inside, inside_too):
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"


def test_no_span_is_current_outside_bicameral_spans() -> None:
    assert not trace.get_current_span().get_span_context().is_valid
    assert tracing.log_ids() == {}
