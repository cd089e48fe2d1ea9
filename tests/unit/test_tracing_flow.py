"""One trace follows a PlaceOrder through the three shop services, in one process: the HTTP
request, the command and its append, each relay's publish, each reaction and the command it
sends, and projector batches linked to it (spans kept by the SDK's in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from bicameral.http.app import create_app
from bicameral.http.tracing import traced
from bicameral.runtime.node import ROLES, Node
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from bicameral.testing.tracing import record_spans
from shop.app import services
from tests.order_trace import LAST, PLACE, Span, check_order_trace, place_order_trace
from tests.unit.test_worker_meters import memory_settings

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def span_of(span: ReadableSpan) -> Span:
    assert span.context is not None
    return Span(
        span.name,
        span.context.trace_id,
        span.context.span_id,
        span.parent.span_id if span.parent else None,
        str(span.resource.attributes["service.name"]),
        [(link.context.trace_id, link.context.span_id) for link in span.links],
    )


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    node = Node(memory_settings(tmp_path), services(), ROLES)
    app = traced(create_app(node, manage_node=False))
    token = issue_token(embedded_secret(tmp_path), subject="admin", roles=["admin"])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    with record_spans("shop") as spans:
        await node.start()
        try:
            async with httpx.AsyncClient(transport=transport, headers=headers) as client:
                yield client, spans
        finally:
            await node.stop()


async def send(client: httpx.AsyncClient, path: str, **headers: str) -> None:
    service, name, body = path.split(" ", 2)
    url = f"http://test/{service}/commands/{name}"
    got = await client.post(url, content=body, headers=headers)
    assert got.status_code == 200, got.text


async def test_one_trace_follows_an_order_through_every_service(
    shop: tuple[httpx.AsyncClient, InMemorySpanExporter],
) -> None:
    client, exporter = shop
    await send(client, 'inventory RegisterProduct {"sku":"p1","name":"Pen","price_cents":150}')
    await send(client, 'inventory ReceiveStock {"sku":"p1","quantity":5}')
    await send(client, 'payments DepositFunds {"customer_id":"c1","amount_cents":1000}')
    order = '{"order_id":"o1","customer_id":"c1","lines":[{"sku":"p1","quantity":2}]}'
    await send(client, f"orders PlaceOrder {order}", traceparent=CALLER)
    spans: list[Span] = []
    for _ in range(500):
        spans = [span_of(s) for s in exporter.get_finished_spans()]
        if any(s.name == LAST for s in place_order_trace(spans)):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the last projector batches
    spans = [span_of(s) for s in exporter.get_finished_spans()]
    check_order_trace(spans, services=False)
    (request,) = [s for s in exporter.get_finished_spans() if s.name == PLACE]
    assert request.kind == SpanKind.SERVER
    assert request.parent is not None
    assert (request.parent.trace_id, request.parent.span_id) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
    )
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["http.route"] == "/orders/commands/PlaceOrder"
