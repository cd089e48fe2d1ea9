"""The lean route table answers every request exactly as FastAPI's router does: the same
status, the same headers in the same order and the same body, for good and bad requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind
from starlette.types import Message, Receive, Scope, Send

from bicameral.context import Principal
from bicameral.http.app import create_app
from bicameral.http.edge import Edge
from bicameral.http.fastpath import FastPath
from bicameral.http.tracing import traced
from bicameral.runtime.node import Node
from bicameral.runtime.settings import HttpSettings, Settings
from bicameral.security.keys import embedded_secret
from bicameral.testing.tracing import record_spans
from shop.app import services
from tests.http_exchanges import EXCHANGES, Exchange, asgi, converse

API = ("command-api", "query-api")


async def _apps(tmp_path: Path, roles: tuple[str, ...]) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    nodes = []
    apps = []
    for fast in (True, False):
        node = Node(
            Settings.load(
                environ={},
                data_dir=tmp_path,
                events_url="memory://",
                reads_url="memory://",
                transport_url="memory://",
                http=HttpSettings(max_body_bytes=4096),
            ),
            services(),
            roles,
        )
        await node.start()
        nodes.append(node)
        apps.append(create_app(node, manage_node=False, fast_path=fast))
    try:
        yield apps[0], apps[1]
    finally:
        for node in nodes:
            await node.stop()


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """The same services behind the fast path and behind FastAPI's router (API roles only, so
    that no background work makes the two diverge)."""
    async for pair in _apps(tmp_path, API):
        yield pair


@pytest.fixture
async def projected(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """As ``apps``, with the projectors running (queries wait on consistency tokens)."""
    async for pair in _apps(tmp_path, (*API, "projector")):
        yield pair


async def test_the_table_of_requests_is_answered_alike(
    projected: tuple[FastAPI, FastAPI], tmp_path: Path
) -> None:
    fast, routed = projected
    secret = embedded_secret(tmp_path)
    got, expected = await converse(fast, secret), await converse(routed, secret)
    assert len(got) == len(EXCHANGES)
    for exchange, one, other in zip(EXCHANGES, got, expected, strict=True):
        assert one == other, exchange
    assert {a.status for a in got} >= {200, 307, 400, 401, 403, 404, 405, 409, 413, 415, 422, 503}


def test_the_fast_path_sits_inside_the_edge(apps: tuple[FastAPI, FastAPI]) -> None:
    """The limits and response headers of ``Edge`` apply to it as to every route."""
    fast, routed = apps
    assert [m.cls for m in fast.user_middleware] == [Edge, FastPath]
    assert [m.cls for m in routed.user_middleware] == [Edge]


async def test_the_fast_path_answers_without_the_router_once_it_learned_the_route(
    apps: tuple[FastAPI, FastAPI],
) -> None:
    fast, _ = apps
    first = await asgi(fast, "GET", "/inventory/queries/ListProducts")  # routed, and learned
    fast.router.routes.clear()
    answer = await asgi(fast, "GET", "/inventory/queries/ListProducts")
    assert answer == first
    assert answer.status == 200
    assert answer.body == b'{"items":[]}'
    assert (b"x-content-type-options", b"nosniff") in answer.headers
    assert (await asgi(fast, "GET", "/health")).status == 404  # everything else: the router's
    assert (await asgi(fast, "GET", "/inventory/queries/GetProduct")).status == 404  # unlearned


async def test_the_scope_names_the_route_the_router_would(apps: tuple[FastAPI, FastAPI]) -> None:
    """What reads the scope after the app (a tracing span named after the route) sees the
    router's route, endpoint and path parameters."""
    seen: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for fast, app in zip((True, False), apps, strict=True):

        async def outer(
            scope: Scope,
            receive: Receive,
            send: Send,
            app: FastAPI = app,
            into: list[Any] = seen[fast],
        ) -> None:
            await app(scope, receive, send)
            into.append({k: scope.get(k) for k in ("route", "endpoint", "path_params")})

        for _ in range(2):
            await asgi(outer, "GET", "/inventory/queries/ListProducts")
    for fast in (True, False):
        for names in seen[fast]:
            assert getattr(names["route"], "path", None) == "/inventory/queries/ListProducts"
            assert names["path_params"] == {}
    assert seen[True][1]["endpoint"] is seen[True][0]["endpoint"]
    assert seen[True][1]["route"] is seen[True][0]["route"]


async def test_other_paths_and_a_root_path_go_to_fastapi(apps: tuple[FastAPI, FastAPI]) -> None:
    fast, routed = apps
    for method, path in (("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs")):
        one, other = await asgi(fast, method, path), await asgi(routed, method, path)
        assert one == other
        assert one.status == 200


async def test_an_error_no_handler_takes_is_the_server_errors_500_alike(tmp_path: Path) -> None:
    """An unexpected exception goes on to the server-error middleware (a 500 problem, then the
    exception raised to the server, which logs it), through either path."""

    async def crashing(request: Request) -> Principal:
        raise RuntimeError("the identity provider is down")

    node = Node(
        Settings.load(environ={}, data_dir=tmp_path, events_url="memory://"), services(), API
    )
    answers = []
    for fast in (True, False):
        app = create_app(node, authenticate=crashing, manage_node=False, fast_path=fast)
        sent: list[Message] = []

        async def send(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        with pytest.raises(RuntimeError, match="provider is down"):
            await app(_scope("GET", "/inventory/queries/ListProducts"), _no_body, send)
        answers.append(sent)
    assert answers[0] == answers[1]
    assert answers[0][0]["status"] == 500


def _scope(method: str, path: str) -> dict[str, object]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


paths = st.sampled_from(
    [
        "/inventory/commands/RegisterProduct",
        "/inventory/commands/ReceiveStock",
        "/inventory/commands/ReserveStock",
        "/inventory/queries/GetProduct",
        "/inventory/queries/ListProducts",
        "/orders/commands/PlaceOrder",
        "/orders/queries/GetOrder",
        "/payments/commands/DepositFunds",
        "/payments/queries/GetBalance",
        "/inventory/commands/Nope",
        "/inventory/queries/GetProduct/",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"sku": st.sampled_from(["pen", "ink", "", "p/1"]), "quantity": st.integers(-1, 10)}
    ),
    st.fixed_dictionaries(
        {
            "sku": st.sampled_from(["pen", "ink"]),
            "name": st.text(max_size=4),
            "price_cents": json_values,
        }
    ),
    st.dictionaries(st.sampled_from(["sku", "order_id", "customer_id", "lines", "x"]), json_values),
    st.binary(max_size=12),
)
header_values = st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=6)
headers = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Idempotency-Key",
                "X-Correlation-Id",
                "traceparent",
                "Content-Type",
                "X-Consistency-Timeout",
                "X-Consistency-Token",
            ]
        ),
        header_values
        | st.sampled_from(["application/json", "text/plain", "0.01", "5", "eyJpbnZlbnRvcnkiOjB9"]),
    ),
    max_size=3,
)
queries = st.lists(
    st.tuples(st.sampled_from(["sku", "order_id", "customer_id", "x"]), st.text(max_size=4)),
    max_size=3,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8"))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT"]),
    path=paths,
    query=queries,
    body=st.none() | bodies,
    extra=headers,
    who=st.sampled_from([None, "admin", "staff", "alice"]),
    json=st.booleans(),
)
async def test_any_request_is_answered_alike(
    apps: tuple[FastAPI, FastAPI],
    tmp_path: Path,
    method: str,
    path: str,
    query: bytes,
    body: object,
    extra: list[tuple[str, str]],
    who: str | None,
    json: bool,
) -> None:
    exchange = Exchange(method, path, query, body, None, tuple(extra), who, None, json)
    secret = embedded_secret(tmp_path)
    fast, routed = apps
    (one,) = await converse(fast, secret, [exchange])
    (other,) = await converse(routed, secret, [exchange])
    assert one == other


async def test_a_request_the_fast_path_serves_is_a_span_named_by_its_route(
    apps: tuple[FastAPI, FastAPI],
) -> None:
    fast, _ = apps
    with record_spans() as exporter:
        for _ in range(3):  # the first is routed (and learned), the others are not
            assert (
                await asgi(traced(fast), "GET", "/inventory/queries/ListProducts")
            ).status == 200
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /inventory/queries/ListProducts"] * 3
