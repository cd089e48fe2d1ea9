"""Each HTTP request is a server span around the whole app, named after its route."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bicameral import tracing
from bicameral.http.tracing import TracedApp, traced
from bicameral.testing.tracing import record_spans


async def hello(request: Request) -> PlainTextResponse:
    if tracing.enabled():
        with tracing.span("inside"):
            pass
    return PlainTextResponse("hi")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


APP = Starlette(
    routes=[
        Route("/items/{item}", hello),
        Route("/health", hello),
        Route("/shop/subscriptions/Items", hello),
        Route("/boom", boom),
    ]
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with record_spans() as exporter:
        yield exporter


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=traced(APP), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_a_request_is_a_server_span_named_by_its_route(spans: InMemorySpanExporter) -> None:
    async with client() as http:
        assert (await http.get("/items/42")).status_code == 200
    inside, request = spans.get_finished_spans()
    assert (request.name, request.kind) == ("GET /items/{item}", SpanKind.SERVER)
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 200
    assert request.attributes["url.path"] == "/items/42"
    assert inside.parent is not None
    assert request.context is not None
    assert inside.parent.span_id == request.context.span_id


async def test_a_request_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with client() as http:
        await http.get("/items/1", headers={"traceparent": caller})
    request = spans.get_finished_spans()[-1]
    assert request.parent is not None
    assert request.parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C


async def test_no_route_is_the_method_alone_and_a_failure_is_an_error(
    spans: InMemorySpanExporter,
) -> None:
    async with client() as http:
        assert (await http.get("/nowhere")).status_code == 404
        assert (await http.get("/boom")).status_code == 500
    missing, failed = spans.get_finished_spans()
    assert missing.name == "GET"
    assert missing.status.status_code == StatusCode.UNSET
    assert failed.name == "GET /boom"
    assert failed.status.status_code == StatusCode.ERROR


async def test_probes_and_subscriptions_are_not_traced(spans: InMemorySpanExporter) -> None:
    async with client() as http:
        await http.get("/health")
        await http.get("/shop/subscriptions/Items")
    assert [s.name for s in spans.get_finished_spans()] == ["inside", "inside"]


async def test_with_tracing_off_the_app_runs_as_it_is() -> None:
    assert not tracing.enabled()
    async with client() as http:
        assert (await http.get("/items/1")).text == "hi"
    assert isinstance(traced(APP), TracedApp)
    assert traced(traced(APP)).app is APP  # type: ignore[attr-defined]
