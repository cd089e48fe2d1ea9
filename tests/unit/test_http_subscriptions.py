"""GET /{service}/subscriptions/{Query}: the query's result as Server-Sent Events, then each
change; refusals as the query route answers them; the end when the token expires."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Message

from bicameral.http.app import create_app
from bicameral.http.problems import install_problem_handlers
from bicameral.http.subscriptions import subscription_router
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from shop.app import services
from tests.unit.counting import OneReadStore

WAIT = 10.0


class EventStream:
    """One streamed response of an ASGI app, read in-process as it comes."""

    def __init__(self, app: ASGIApp, path: str, token: str | None = None, **params: str) -> None:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": urlencode(params).encode(),
            "root_path": "",
            "headers": [(b"host", b"test"), *headers],
            "server": ("test", 80),
            "client": ("test", 1234),
        }
        self.app = app
        self.status = 0
        self.headers: dict[str, str] = {}
        self._gone = asyncio.Event()
        self._sent: asyncio.Queue[Message] = asyncio.Queue()
        self._buffer = b""
        self.ended = False

    async def _receive(self) -> Message:
        if "requested" not in self.__dict__:
            self.requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        await self._sent.put(message)

    async def __aenter__(self) -> EventStream:
        self.task = asyncio.ensure_future(self.app(self.scope, self._receive, self._send))
        start = await asyncio.wait_for(self._sent.get(), WAIT)
        self.status = start["status"]
        self.headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._gone.set()
        await asyncio.wait_for(self.task, WAIT)

    async def chunk(self) -> bytes:
        """Returns the next piece of the body (b"" once it ended)."""
        message = await asyncio.wait_for(self._sent.get(), WAIT)
        if not message.get("more_body", False):
            self.ended = True
        return bytes(message.get("body", b""))

    async def body(self) -> bytes:
        found = b""
        while not self.ended:
            found += await self.chunk()
        return found

    async def event(self) -> tuple[str, Any]:
        """Returns the next event or comment: (``event`` name, data) or ("", comment)."""
        while b"\n\n" not in self._buffer:
            piece = await self.chunk()
            if self.ended and not piece:
                raise EOFError("the stream ended")
            self._buffer += piece
        block, _, self._buffer = self._buffer.partition(b"\n\n")
        if block.startswith(b":"):
            return "", block[1:].strip().decode()
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n"))
        return fields[b"event"].decode(), orjson.loads(fields[b"data"])


def _settings(tmp_path: Path) -> Settings:
    return Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
    )


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    made = Node(_settings(tmp_path), services(), ROLES)
    await made.start()
    yield made
    await made.stop()


@pytest.fixture
def app(node: Node) -> FastAPI:
    return create_app(node, manage_node=False)


def _token(tmp_path: Path, *roles: str, subject: str = "someone", ttl: float = 3600) -> str:
    return issue_token(
        embedded_secret(tmp_path), subject=subject, roles=roles, ttl=timedelta(seconds=ttl)
    )


@pytest.fixture
async def client(app: FastAPI, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {_token(tmp_path, 'admin')}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


async def _command(client: httpx.AsyncClient, name: str, body: dict[str, Any]) -> None:
    done = await client.post(f"/inventory/commands/{name}", json=body)
    assert done.status_code == 200, done.text


async def test_the_result_comes_at_once_then_again_after_each_command(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await _command(client, "RegisterProduct", {"sku": "mug", "name": "Mug", "price_cents": 1200})
    await asyncio.sleep(0)
    async with EventStream(app, "/inventory/subscriptions/ListProducts") as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        kind, first = await stream.event()
        assert kind == "result"
        await _command(client, "ReceiveStock", {"sku": "mug", "quantity": 7})
        while True:  # the mug may have been registered in the read model after the first
            kind, data = await stream.event()
            if data["items"] and data["items"][0]["on_hand"] == 7:
                break
        assert data != first


async def test_heartbeats_keep_an_idle_stream_open(node: Node) -> None:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(subscription_router(node, authenticator_for(node.settings), heartbeat=0.05))
    async with EventStream(app, "/inventory/subscriptions/ListProducts") as stream:
        assert await stream.event() == ("result", {"items": []})
        assert await stream.event() == ("", "heartbeat")
        assert await stream.event() == ("", "heartbeat")


async def test_the_stream_ends_when_the_bearer_token_expires(app: FastAPI, tmp_path: Path) -> None:
    token = _token(tmp_path, "staff", ttl=3)
    async with EventStream(app, "/inventory/subscriptions/ListProducts", token) as stream:
        event = await stream.event()
        if event[0] == "result":  # a loaded machine may reach the expiry before the first result
            event = await stream.event()
        assert event == ("expired", {"detail": "the bearer token has expired"})
        assert await stream.body() == b""
        assert stream.ended


async def _refusal(app: FastAPI, path: str, token: str | None = None, **params: str) -> Any:
    async with EventStream(app, path, token, **params) as stream:
        assert stream.headers["content-type"] == "application/problem+json"
        return stream.status, orjson.loads(await stream.body())


async def test_refusals_are_the_query_routes(app: FastAPI, tmp_path: Path) -> None:
    balance = "/payments/subscriptions/GetBalance"
    status, problem = await _refusal(app, balance, customer_id="alice")
    assert status == 401
    status, _ = await _refusal(app, balance, "not-a-token", customer_id="alice")
    assert status == 401
    expired = _token(tmp_path, "customer", subject="alice", ttl=1)
    await asyncio.sleep(1.5)
    status, _ = await _refusal(app, balance, expired + "x", customer_id="alice")
    assert status == 401
    status, _ = await _refusal(app, balance, _token(tmp_path, "staff"), customer_id="alice")
    assert status == 403
    bob = _token(tmp_path, "customer", subject="bob")
    status, _ = await _refusal(app, balance, bob, customer_id="alice")
    assert status == 403
    status, problem = await _refusal(app, "/inventory/subscriptions/Nothing")
    assert status == 404
    status, problem = await _refusal(app, "/inventory/subscriptions/GetProduct")
    assert status == 422
    assert problem["errors"][0]["loc"] == ["query", "sku"]
    status, problem = await _refusal(app, "/inventory/subscriptions/GetProduct", sku="none")
    assert status == 404


async def test_a_client_that_goes_away_leaves_nothing_subscribed(app: FastAPI, node: Node) -> None:
    async with EventStream(app, "/inventory/subscriptions/ListProducts") as stream:
        await stream.event()
    reads = node.runtime("inventory").reads
    assert not reads.commits().watching  # type: ignore[attr-defined]


async def test_openapi_documents_each_subscription_beside_its_query(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    query = doc["paths"]["/payments/queries/GetBalance"]["get"]
    live = doc["paths"]["/payments/subscriptions/GetBalance"]["get"]
    assert live["operationId"] == "payments.GetBalance.subscription"
    assert live["security"] == query["security"]
    assert live["x-roles"] == query["x-roles"]
    names = [p["name"] for p in live["parameters"]]
    assert "customer_id" in names
    assert "X-Consistency-Token" not in names
    ok = live["responses"]["200"]["content"]["text/event-stream"]
    answer = query["responses"]["200"]["content"]["application/json"]
    assert ok["x-result-schema"] == answer["schema"]
    assert {"401", "403", "404", "422"} <= set(live["responses"])


async def test_a_record_deleted_later_is_a_problem_event(
    app: FastAPI, node: Node, client: httpx.AsyncClient
) -> None:
    await _command(client, "RegisterProduct", {"sku": "gone", "name": "Gone", "price_cents": 1})
    reads = node.runtime("inventory").reads
    for _ in range(200):
        if (await client.get("/inventory/queries/GetProduct", params={"sku": "gone"})).is_success:
            break
        await asyncio.sleep(0.05)
    async with EventStream(app, "/inventory/subscriptions/GetProduct", sku="gone") as stream:
        assert (await stream.event())[0] == "result"
        checkpoint = "products.v1:inventory#p9"  # what another process's projector would move
        assert await reads.commit(checkpoint, 0, 1, {("products_v1_products", "gone"): None})
        kind, problem = await stream.event()
        assert kind == "problem"
        assert (problem["status"], problem["detail"]) == (404, "no product 'gone'")


async def test_a_thousand_idle_streams_read_nothing_until_a_commit(tmp_path: Path) -> None:
    factory = OneReadStore()
    node = Node(_settings(tmp_path), services(), ["query-api"], factory=factory)
    await node.start()
    app = create_app(node, manage_node=False)
    try:
        async with contextlib.AsyncExitStack() as streams:
            opened = [
                await streams.enter_async_context(
                    EventStream(app, "/inventory/subscriptions/ListProducts")
                )
                for _ in range(1000)
            ]
            for stream in opened:
                assert await stream.event() == ("result", {"items": []})
            idle_from = factory.store.reads
            await asyncio.sleep(1.0)
            assert factory.store.reads == idle_from  # no read while nothing commits
            doc = {"sku": "a", "name": "A", "price_cents": 1}
            doc |= {"on_hand": 0, "reserved": 0, "available": 0}
            changes = {("products_v1_products", "a"): doc}
            assert await factory.store.commit("products.v1:inventory#p0", 0, 1, changes)
            for stream in opened:
                assert await stream.event() == ("result", {"items": [doc]})
            assert factory.store.reads - idle_from <= 2  # one run for the 1,000 (one group)
    finally:
        await node.stop()
