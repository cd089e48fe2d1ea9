"""One trace follows a PlaceOrder across processes and services, set up only by ``OTEL_*``.

Three ``bicameral serve`` processes, configured by the standard variables alone, export their
spans over OTLP/HTTP to a receiver in this test, which decodes the protobuf requests: orders'
command API, and inventory and payments each with every role. Orders' relay, reactions and
projector run in this test's own process, their spans kept by the SDK's in-memory exporter.
The trace context crosses processes in the events (the CloudEvents ``traceparent``): through
the SQLite transport and files (embedded), or NATS JetStream, PostgreSQL and Redis (servers).
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bicameral.runtime.apps import load_services
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.testing.tracing import record_spans
from tests.e2e.cluster import Cluster, free_port
from tests.e2e.conftest import admin_headers, child_env
from tests.e2e.layouts import Layout, create_stores, write_settings
from tests.e2e.order_flow.api import ok, order, product
from tests.e2e.order_flow.processes import Router
from tests.order_trace import Span, check_order_trace
from tests.unit.test_tracing_flow import span_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

WORKERS = ["relay", "reactions", "projector"]


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver on a local port: keeps the spans of every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found.append(
                        Span(
                            span.name,
                            int.from_bytes(span.trace_id, "big"),
                            int.from_bytes(span.span_id, "big"),
                            int.from_bytes(span.parent_span_id, "big") or None,
                            attrs["service.name"],
                            [
                                (
                                    int.from_bytes(k.trace_id, "big"),
                                    int.from_bytes(k.span_id, "big"),
                                )
                                for k in span.links
                            ],
                        )
                    )
        with self.lock:
            self.spans.extend(found)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert self.path == "/v1/traces", self.path
        self.server.keep(body)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(layout: Layout, tmp_path: Path) -> Settings:
    return write_settings(tmp_path / "bicameral.toml", layout, "shop.app:services")


@pytest.fixture
def cluster(settings: Settings, receiver: Receiver, tmp_path: Path) -> Iterator[Cluster]:
    """Orders' command API, and inventory and payments with every role, each in its own
    process, tracing as the standard variables say."""
    env = child_env() | {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env)
    admin_headers(settings.data_dir)
    asyncio.run(create_stores(settings))
    try:
        cluster.serve("orders", "orders", "command-api", free_port())
        for name in ("inventory", "payments"):
            cluster.serve(name, name, ["command-api", *WORKERS], free_port())
        cluster.wait_healthy(list(cluster.procs))
        yield cluster
    finally:
        cluster.stop()
        print(cluster.logs())  # shown by pytest when the test failed


@pytest.fixture
async def orders_workers(
    settings: Settings, cluster: Cluster
) -> AsyncIterator[InMemorySpanExporter]:
    """Orders' relay, reactions and projector in this process, spans kept in memory."""
    (orders,) = [s for s in load_services(settings.app) if s.name == "orders"]
    node = Node(settings, [orders], WORKERS)
    with record_spans("orders") as spans:
        await node.start()
        try:
            yield spans
        finally:
            await node.stop()


async def test_one_trace_follows_an_order_across_processes(
    cluster: Cluster,
    receiver: Receiver,
    orders_workers: InMemorySpanExporter,
    settings: Settings,
) -> None:
    ports = {name: proc.port or 0 for name, proc in cluster.procs.items()}
    options = {
        "base_url": "http://shop",
        "headers": admin_headers(settings.data_dir),
        "timeout": 30,
    }
    async with httpx.AsyncClient(transport=Router(ports), **options) as http:
        await product(http, "bolt", price=300, stock=5)
        await ok(http, "payments", "DepositFunds", customer_id="c1", amount_cents=1000)
        await order(http, "c1-1", "c1", bolt=2)

    def spans() -> list[Span]:
        with receiver.lock:
            received = list(receiver.spans)
        return received + [span_of(s) for s in orders_workers.get_finished_spans()]

    for _ in range(600):
        try:
            check_order_trace(spans())
            break
        except AssertionError:
            assert not cluster.dead(), cluster.logs()
            await asyncio.sleep(0.1)
    check_order_trace(spans())
    # named after the one service each process runs, as OTEL_SERVICE_NAME is not set
    assert {s.service for s in receiver.spans} == {"orders", "inventory", "payments"}
    kept = {s.name for s in orders_workers.get_finished_spans()}
    assert {"publish orders", "react orders.confirm_paid", "command ConfirmOrder"} <= kept
