"""The HTTP edge refuses oversized or malformed requests before any work, each with its 4xx
problem+json naming what is at fault; every response carries nosniff and no-store.

In-process (ASGI, memory backends); the server-level limits and a real socket are in
tests/e2e/test_http_limits.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bicameral.context import Principal
from bicameral.errors import AuthenticationError
from bicameral.http.app import create_app
from bicameral.http.routes import _query_values
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import HttpSettings, Settings
from bicameral.security.authn import BearerAuthenticator
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import MAX_TOKEN_BYTES, issue_token
from shop.app import services

LIMIT = 4096
REGISTER = "/inventory/commands/RegisterProduct"
PRODUCT = {"sku": "p1", "name": "Pen", "price_cents": 150}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
        http=HttpSettings(max_body_bytes=LIMIT),
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(settings, services(), ROLES)
    await node.start()
    token = issue_token(embedded_secret(settings.data_dir), subject="root", roles=["admin"])
    transport = httpx.ASGITransport(app=create_app(node, manage_node=False))
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers
        ) as http:
            yield http
    finally:
        await node.stop()


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def test_a_body_announced_over_the_limit_is_a_413_before_authentication(
    client: httpx.AsyncClient,
) -> None:
    big = b'{"sku": "' + b"a" * LIMIT + b'"}'
    got = await client.post(
        REGISTER, content=big, headers={"Content-Type": "application/json", "Authorization": ""}
    )
    body = _problem(got, 413)
    assert body["errors"][0]["loc"] == ["body"]
    assert got.headers["connection"] == "close"


async def test_a_chunked_body_is_counted_and_refused_once_past_the_limit(
    client: httpx.AsyncClient,
) -> None:
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(100):
            read += 1024
            yield b" " * 1024

    got = await client.post(
        REGISTER, content=chunks(), headers={"Content-Type": "application/json"}
    )
    _problem(got, 413)
    assert read <= LIMIT + 2048  # not the whole 100 KiB


async def test_a_body_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    body = b'{"sku": "p1", "name": "Pen", "price_cents": 150}'
    padded = body + b" " * (LIMIT - len(body))
    got = await client.post(REGISTER, content=padded, headers={"Content-Type": "application/json"})
    assert got.status_code == 200, got.text


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Correlation-Id"])
@pytest.mark.parametrize("value", ["k" * 201, "caf\u00e9", "", "tab\there"])
async def test_keys_must_be_1_to_200_printable_ascii_characters(
    client: httpx.AsyncClient, header: str, value: str
) -> None:
    got = await client.post(REGISTER, json=PRODUCT, headers={header: value.encode("latin-1")})
    body = _problem(got, 400)
    assert body["errors"][0]["loc"] == ["header", header]


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-Correlation-Id"])
async def test_a_key_of_200_printable_characters_is_taken(
    client: httpx.AsyncClient, header: str
) -> None:
    got = await client.post(REGISTER, json=PRODUCT, headers={header: "k !~" * 50})
    assert got.status_code == 200, got.text


async def test_an_overlong_traceparent_is_ignored_not_stored(client: httpx.AsyncClient) -> None:
    done = await client.post(REGISTER, json=PRODUCT, headers={"traceparent": "t" * 5000})
    assert done.status_code == 200
    node = client._transport.app.state.node  # type: ignore[attr-defined]
    (event,) = await node.runtime("inventory").events.read_stream("product-p1")
    assert not event.metadata.get("traceparent")


async def test_more_than_100_query_parameters_is_a_400_naming_the_query(
    client: httpx.AsyncClient,
) -> None:
    query = "&".join(f"p{i}" for i in range(1_000))
    body = _problem(await client.get(f"/inventory/queries/GetProduct?{query}"), 400)
    assert body["errors"][0]["loc"] == ["query"]
    hundred = "&".join(f"p{i}=1" for i in range(99))
    got = await client.get(f"/inventory/queries/GetProduct?sku=p1&{hundred}")
    assert _problem(got, 422)["errors"][0]["loc"][0] == "query"  # read, then refused


def test_query_values_are_grouped_in_one_pass() -> None:
    scope = {"type": "http", "query_string": b"a=1&b=2&a=3&c=&d=x%20y&b=4&e=5"}
    from starlette.requests import Request

    values = _query_values(Request(scope), frozenset({"e"}))
    assert values == {"a": ["1", "3"], "b": ["2", "4"], "c": "", "d": "x y", "e": ["5"]}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
async def test_a_command_not_sent_as_json_is_a_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    got = await client.post(REGISTER, content=b'{"sku": "p1"}', headers=headers)
    body = _problem(got, 415)
    assert body["errors"][0]["loc"] == ["header", "Content-Type"]


async def test_json_with_a_charset_or_a_json_suffix_is_json(client: httpx.AsyncClient) -> None:
    for i, content_type in enumerate(["application/json; charset=utf-8", "application/x+json"]):
        body = {**PRODUCT, "sku": f"c{i}"}
        got = await client.post(
            REGISTER,
            content=httpx.Request("POST", "/", json=body).content,
            headers={"Content-Type": content_type},
        )
        assert got.status_code == 200, got.text


async def test_an_anonymous_caller_gets_401_before_the_media_type_is_looked_at(
    client: httpx.AsyncClient,
) -> None:
    got = await client.post(
        REGISTER, content=b"x", headers={"Content-Type": "text/plain", "Authorization": ""}
    )
    _problem(got, 401)


class Exploding:
    """A verifier that must never be reached."""

    def verify(self, token: str) -> Principal:
        raise AssertionError("a token over the limit was decoded")


async def test_a_token_over_8_kib_is_refused_before_any_decoding() -> None:
    from starlette.requests import Request

    authenticate = BearerAuthenticator(Exploding())  # type: ignore[arg-type]
    token = "a" * (MAX_TOKEN_BYTES + 1)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]}
    with pytest.raises(AuthenticationError, match="8 KiB"):
        await authenticate(Request(scope))


async def test_a_token_over_8_kib_is_a_401(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": "Bearer " + "a" * (MAX_TOKEN_BYTES + 1)}
    body = _problem(await client.get("/inventory/queries/ListProducts", headers=headers), 401)
    assert "8 KiB" in body["detail"]


ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", REGISTER, {"json": PRODUCT}),
    ("GET", "/inventory/queries/GetProduct?sku=p1", {}),
    ("GET", "/inventory/queries/GetProduct?sku=nope", {}),
    ("GET", "/payments/queries/GetBalance?customer_id=c1", {}),
    ("GET", "/metrics", {}),
    ("GET", "/health", {}),
    ("POST", REGISTER, {"content": b"x"}),
]


async def test_every_answer_carries_nosniff_and_no_store(client: httpx.AsyncClient) -> None:
    for method, path, options in ROUTES:
        got = await client.request(method, path, **options)
        assert got.headers["x-content-type-options"] == "nosniff", path
        assert got.headers["cache-control"] == "no-store", path


async def test_documentation_assets_may_be_cached(client: httpx.AsyncClient) -> None:
    got = await client.get("/docs/assets/swagger-ui.css")
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["cache-control"].startswith("public")
