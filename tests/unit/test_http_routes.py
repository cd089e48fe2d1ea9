"""The command and query routes read their headers and parameters themselves; these pin
what a client sees: validation errors naming the field, tokens, idempotency, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral.http.app import create_app
from bicameral.http.edge import MAX_QUERY_PARAMS
from bicameral.http.routes import _pairs
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from shop.app import services


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
    )
    node = Node(settings, services(), ROLES)
    app = create_app(node, manage_node=False)
    await node.start()
    transport = httpx.ASGITransport(app=app)
    token = issue_token(embedded_secret(tmp_path), subject="admin", roles=["admin"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as c:
        yield c
    await node.stop()


async def _register(client: httpx.AsyncClient, sku: str = "p1") -> httpx.Response:
    body = {"sku": sku, "name": "Pen", "price_cents": 150}
    return await client.post("/inventory/commands/RegisterProduct", json=body)


async def test_a_query_with_the_command_token_sees_the_command(client: httpx.AsyncClient) -> None:
    done = await _register(client)
    assert done.status_code == 200
    token = done.headers["X-Consistency-Token"]
    assert done.json()["consistency_token"] == token
    got = await client.get(
        "/inventory/queries/GetProduct",
        params={"sku": "p1"},
        headers={"X-Consistency-Token": token},
    )
    assert got.status_code == 200
    assert got.json() == {
        "sku": "p1",
        "name": "Pen",
        "price_cents": 150,
        "on_hand": 0,
        "reserved": 0,
        "available": 0,
    }


async def test_a_missing_query_parameter_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    got = await client.get("/inventory/queries/GetProduct")
    assert got.status_code == 422
    assert got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert problem["detail"] == "invalid fields: sku"
    assert problem["errors"][0]["loc"] == ["query", "sku"]


async def test_an_unknown_query_parameter_is_refused(client: httpx.AsyncClient) -> None:
    got = await client.get("/inventory/queries/GetProduct", params={"sku": "p1", "colour": "red"})
    assert got.status_code == 422
    assert ["query", "colour"] in [e["loc"] for e in got.json()["errors"]]


async def test_a_bad_consistency_timeout_is_a_422(client: httpx.AsyncClient) -> None:
    got = await client.get(
        "/inventory/queries/GetProduct",
        params={"sku": "p1"},
        headers={"X-Consistency-Timeout": "soon"},
    )
    assert got.status_code == 422


async def test_an_idempotency_key_replays_the_first_answer(client: httpx.AsyncClient) -> None:
    body = {"sku": "p2", "name": "Ink", "price_cents": 90}
    headers = {"Idempotency-Key": "k-1"}
    first = await client.post("/inventory/commands/RegisterProduct", json=body, headers=headers)
    again = await client.post("/inventory/commands/RegisterProduct", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["position"] == first.json()["position"]


async def test_the_correlation_id_header_reaches_the_events(client: httpx.AsyncClient) -> None:
    done = await client.post(
        "/inventory/commands/RegisterProduct",
        json={"sku": "p3", "name": "Cap", "price_cents": 5},
        headers={"X-Correlation-Id": "corr-42", "traceparent": "00-abc-def-01"},
    )
    assert done.status_code == 200
    node = client._transport.app.state.node  # type: ignore[attr-defined]
    (event,) = await node.runtime("inventory").events.read_stream("product-p3")
    assert event.metadata["correlation_id"] == "corr-42"
    assert event.metadata["traceparent"] == "00-abc-def-01"


async def test_openapi_documents_parameters_and_headers(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    query = doc["paths"]["/inventory/queries/GetProduct"]["get"]
    names = [(p["in"], p["name"]) for p in query["parameters"]]
    assert ("query", "sku") in names
    assert ("header", "X-Consistency-Token") in names
    assert "422" in query["responses"]
    command = doc["paths"]["/inventory/commands/ReceiveStock"]["post"]
    assert ("header", "Idempotency-Key") in [(p["in"], p["name"]) for p in command["parameters"]]


@pytest.mark.parametrize("price", ["12", True, 12.0, 2**64 - 1, 10_000_001, -1])
async def test_a_number_field_takes_only_a_bounded_json_integer(
    client: httpx.AsyncClient, price: object
) -> None:
    body = {"sku": "p1", "name": "Pen", "price_cents": price}
    got = await client.post("/inventory/commands/RegisterProduct", json=body)
    assert got.status_code == 422
    assert got.headers["content-type"] == "application/problem+json"
    problem = got.json()
    assert [e["loc"] for e in problem["errors"]] == [["body", "price_cents"]]
    assert "price_cents" in problem["detail"]


async def test_a_string_field_takes_no_number(client: httpx.AsyncClient) -> None:
    body = {"sku": "p1", "name": 12, "price_cents": 100}
    got = await client.post("/inventory/commands/RegisterProduct", json=body)
    assert got.status_code == 422
    assert [e["loc"] for e in got.json()["errors"]] == [["body", "name"]]


async def test_a_nested_number_field_is_strict_too(client: httpx.AsyncClient) -> None:
    body = {"order_id": "o1", "customer_id": "c1", "lines": [{"sku": "p1", "quantity": "2"}]}
    got = await client.post("/orders/commands/PlaceOrder", json=body)
    assert got.status_code == 422
    assert [e["loc"] for e in got.json()["errors"]] == [["body", "lines", "0", "quantity"]]


async def test_a_body_that_is_not_json_is_a_422(client: httpx.AsyncClient) -> None:
    got = await client.post(
        "/inventory/commands/RegisterProduct",
        content=b'{"sku": ',
        headers={"Content-Type": "application/json"},
    )
    assert got.status_code == 422
    assert got.json()["detail"] == "the request body is not valid JSON"


async def test_a_deposit_that_would_pass_the_largest_balance_is_refused(
    client: httpx.AsyncClient,
) -> None:
    url = "/payments/commands/DepositFunds"
    huge = await client.post(url, json={"customer_id": "c1", "amount_cents": 2**64 - 1})
    assert huge.status_code == 422
    full = await client.post(url, json={"customer_id": "c1", "amount_cents": 10**15})
    assert full.status_code == 200
    over = await client.post(url, json={"customer_id": "c1", "amount_cents": 1})
    assert over.status_code == 409
    assert over.headers["content-type"] == "application/problem+json"


async def test_schemas_state_the_upper_bound_of_every_number(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert schemas["RegisterProduct"]["properties"]["price_cents"]["maximum"] == 10_000_000
    assert schemas["DepositFunds"]["properties"]["amount_cents"]["maximum"] == 10**15
    assert schemas["OrderLine"]["properties"]["quantity"]["maximum"] == 1_000_000


async def test_a_query_string_number_is_still_read_from_its_text(
    client: httpx.AsyncClient,
) -> None:
    got = await client.get("/orders/queries/GetOrder", params={"order_id": "12"})
    assert got.status_code == 404


@given(st.text(st.sampled_from("ab=&%+2Fé;x "), max_size=40) | st.just("a=1" + "&" * 120))
def test_a_query_string_is_split_as_parse_qsl_splits_it(query: str) -> None:
    def outcome(split: Callable[[], object]) -> object:
        try:
            return split()
        except ValueError as exc:
            return str(exc)

    assert outcome(lambda: _pairs(query)) == outcome(
        lambda: parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_PARAMS)
    )
