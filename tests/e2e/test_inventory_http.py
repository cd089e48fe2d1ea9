"""The inventory service over HTTP, exactly as issue 2 promises it, on ``bicameral up``."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import uuid
from typing import Any

import httpx
import pytest

from bicameral import ConsistencyToken
from tests.cloudevents import assert_valid_cloudevent
from tests.e2e.conftest import Server

PROBLEM = "application/problem+json"


def new_sku() -> str:
    return f"sku-{uuid.uuid4().hex[:10]}"


def register(
    client: httpx.Client, sku: str, name: str = "Mug", price: int = 1200
) -> httpx.Response:
    body = {"sku": sku, "name": name, "price_cents": price}
    response = client.post("/inventory/commands/RegisterProduct", json=body)
    assert response.status_code == 200, response.text
    return response


def receive(client: httpx.Client, sku: str, quantity: int) -> httpx.Response:
    response = client.post(
        "/inventory/commands/ReceiveStock", json={"sku": sku, "quantity": quantity}
    )
    assert response.status_code == 200, response.text
    return response


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Checks an RFC 9457 problem document of ``status`` and returns it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert body["title"]
    assert body["detail"]
    return body


def test_health_is_ok(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_registering_a_product_answers_with_a_consistency_token(
    client: httpx.Client, server: Server
) -> None:
    sku = new_sku()
    response = register(client, sku)
    body = response.json()
    assert body["consistency_token"] == response.headers["X-Consistency-Token"]
    assert ConsistencyToken.decode(body["consistency_token"]) == ConsistencyToken(
        {"inventory": server.head()}
    )
    assert body["stream_id"] == f"product-{sku}"
    assert body["version"] == 1


def test_a_query_with_the_token_answers_at_once_with_the_product(client: httpx.Client) -> None:
    sku = new_sku()
    register(client, sku, "Blue mug", 1250)
    token = receive(client, sku, 12).json()["consistency_token"]
    response = client.get(
        "/inventory/queries/GetProduct",
        params={"sku": sku},
        headers={"X-Consistency-Token": token, "X-Consistency-Timeout": "5"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "sku": sku,
        "name": "Blue mug",
        "price_cents": 1250,
        "on_hand": 12,
        "reserved": 0,
        "available": 12,
    }


def test_list_products_answers_every_product_as_items(client: httpx.Client) -> None:
    skus = sorted(new_sku() for _ in range(3))
    token = ""
    for sku in skus:
        token = register(client, sku).json()["consistency_token"]
    response = client.get("/inventory/queries/ListProducts", headers={"X-Consistency-Token": token})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["items"]
    listed = [item["sku"] for item in body["items"]]
    assert set(skus) <= set(listed)
    assert listed == sorted(listed)
    assert all(
        set(item) == {"sku", "name", "price_cents", "on_hand", "reserved", "available"}
        for item in body["items"]
    )


def test_a_token_beyond_the_log_gets_503_not_caught_up(client: httpx.Client) -> None:
    beyond = ConsistencyToken({"inventory": 10**9}).encode()
    response = client.get(
        "/inventory/queries/ListProducts",
        headers={"X-Consistency-Token": beyond, "X-Consistency-Timeout": "0.2"},
    )
    body = assert_problem(response, 503)
    assert "caught up" in body["detail"]
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Consistency-Token": "not a token"}, "X-Consistency-Token"),
        ({"X-Consistency-Timeout": "soon"}, "X-Consistency-Timeout"),
        ({"X-Consistency-Timeout": "-1"}, "X-Consistency-Timeout"),
    ],
)
def test_bad_consistency_headers_get_422_naming_the_header(
    client: httpx.Client, headers: dict[str, str], field: str
) -> None:
    response = client.get("/inventory/queries/ListProducts", headers=headers)
    body = assert_problem(response, 422)
    assert ["header", field] in [e["loc"] for e in body["errors"]]


EXISTING = "sku-existing"


@pytest.fixture(scope="module")
def existing(client: httpx.Client) -> str:
    register(client, EXISTING)
    return EXISTING


def post(client: httpx.Client, name: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return client.post(
            f"/inventory/commands/{name}",
            content=body,
            headers={"content-type": "application/json"},
        )
    return client.post(f"/inventory/commands/{name}", json=body)


@pytest.mark.parametrize(
    ("name", "body", "status", "field"),
    [
        ("ReceiveStock", {"sku": EXISTING, "quantity": -5}, 422, "quantity"),
        ("ReceiveStock", {"sku": EXISTING, "quantity": 0}, 422, "quantity"),
        ("ReceiveStock", {"sku": EXISTING, "quantity": "many"}, 422, "quantity"),
        ("ReceiveStock", {"sku": EXISTING}, 422, "quantity"),
        ("RegisterProduct", {"sku": "new-1", "price_cents": 100}, 422, "name"),
        ("RegisterProduct", {"sku": "new-2", "name": "X", "price_cents": -1}, 422, "price_cents"),
        ("RegisterProduct", {"sku": "", "name": "X", "price_cents": 1}, 422, "sku"),
        (
            "RegisterProduct",
            {"sku": "n3", "name": "X", "price_cents": 1, "colour": 1},
            422,
            "colour",
        ),
        ("RegisterProduct", [1, 2], 422, None),
        ("RegisterProduct", b'{"sku": "new-4",', 422, None),
        ("RegisterProduct", b"\xff\xfe", 422, None),
        ("RegisterProduct", {"sku": EXISTING, "name": "Again", "price_cents": 1}, 409, None),
        ("ReceiveStock", {"sku": "no-such-sku", "quantity": 1}, 404, None),
        ("DeleteEverything", {"sku": EXISTING}, 404, None),
    ],
)
def test_bad_commands_get_a_problem_and_write_nothing(
    client: httpx.Client,
    server: Server,
    existing: str,
    name: str,
    body: Any,
    status: int,
    field: str | None,
) -> None:
    before = server.head()
    problem = assert_problem(post(client, name, body), status)
    if field is not None:
        assert ["body", field] in [e["loc"] for e in problem["errors"]]
        assert field in problem["detail"]
    assert server.head() == before


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/inventory/queries/GetProduct?sku=no-such-sku", 404, None),
        ("/inventory/queries/GetProduct", 422, "sku"),
        ("/inventory/queries/GetProduct?sku=bad%20sku", 422, "sku"),
        ("/inventory/queries/FindEverything", 404, None),
        ("/nowhere/queries/GetProduct?sku=a", 404, None),
    ],
)
def test_bad_queries_get_a_problem(
    client: httpx.Client, path: str, status: int, field: str | None
) -> None:
    problem = assert_problem(client.get(path), status)
    if field is not None:
        assert ["query", field] in [e["loc"] for e in problem["errors"]]
        assert field in problem["detail"]


def test_the_same_idempotency_key_and_body_answers_the_first_response_once(
    client: httpx.Client, server: Server
) -> None:
    sku = new_sku()
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    body = {"sku": sku, "name": "Once", "price_cents": 1}
    first = client.post("/inventory/commands/RegisterProduct", json=body, headers=key)
    assert first.status_code == 200
    head = server.head()
    second = client.post("/inventory/commands/RegisterProduct", json=body, headers=key)
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second.headers["X-Consistency-Token"] == first.headers["X-Consistency-Token"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert server.head() == head


def test_the_same_idempotency_key_with_another_body_gets_422(
    client: httpx.Client, server: Server
) -> None:
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = {"sku": new_sku(), "name": "First", "price_cents": 1}
    assert client.post("/inventory/commands/RegisterProduct", json=first, headers=key).is_success
    head = server.head()
    other = {**first, "name": "Second"}
    response = client.post("/inventory/commands/RegisterProduct", json=other, headers=key)
    problem = assert_problem(response, 422)
    assert "Idempotency-Key" in problem["detail"]
    assert server.head() == head


def test_metrics_are_prometheus_text_counting_commands(client: httpx.Client) -> None:
    register(client, new_sku())
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE bicameral_commands_total counter" in text
    assert (
        'bicameral_commands_total{command="RegisterProduct",outcome="ok",service="inventory"}'
        in text
    )
    assert "bicameral_projected_events_total" in text


def test_one_process_of_every_role_exports_every_consumers_lag(client: httpx.Client) -> None:
    """``bicameral up`` serves the workers' metrics on its one port."""
    text = client.get("/metrics").text
    for consumer in ('consumer="relay"', 'consumer="reactions:orders"', "products.v1:inventory"):
        lines = [
            line
            for line in text.splitlines()
            if line.startswith("bicameral_consumer_lag_seconds{") and consumer in line
        ]
        assert lines, consumer
    assert "bicameral_ready 1.0" in text


def test_the_openapi_document_lists_each_message_and_route(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    schemas = doc["components"]["schemas"]
    for message in ("RegisterProduct", "ReceiveStock", "GetProduct", "ListProducts"):
        assert message in schemas, message
    assert set(schemas["RegisterProduct"]["required"]) == {"sku", "name", "price_cents"}
    assert schemas["ReceiveStock"]["properties"]["quantity"]["exclusiveMinimum"] == 0
    assert {
        "/inventory/commands/RegisterProduct",
        "/inventory/commands/ReceiveStock",
        "/inventory/queries/GetProduct",
        "/inventory/queries/ListProducts",
        "/health",
        "/metrics",
    } <= set(doc["paths"])
    get_product = doc["paths"]["/inventory/queries/GetProduct"]["get"]
    assert "sku" in [p["name"] for p in get_product["parameters"]]


def test_the_api_docs_page_is_served(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "openapi.json" in response.text


def test_trace_and_correlation_headers_reach_the_event_and_its_cloudevent(
    client: httpx.Client, server: Server
) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {"traceparent": trace, "X-Correlation-Id": "order-42"}
    sku = new_sku()
    body = {"sku": sku, "name": "Traced", "price_cents": 1}
    response = client.post("/inventory/commands/RegisterProduct", json=body, headers=headers)
    assert response.status_code == 200
    position = response.json()["position"]
    with contextlib.closing(sqlite3.connect(server.events_db())) as conn:
        (raw,) = conn.execute(
            "SELECT metadata FROM events WHERE position = ?", (position,)
        ).fetchone()
    metadata = json.loads(raw)
    assert metadata["traceparent"] == trace
    assert metadata["correlation_id"] == "order-42"
    assert metadata["causation_id"]
    assert "subject" in metadata["principal"]

    deadline = time.monotonic() + 10
    row = None
    while row is None and time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(server.data_dir / "transport.db")) as conn:
            row = conn.execute(
                "SELECT body FROM messages WHERE source = 'inventory' AND position = ?",
                (position,),
            ).fetchone()
        time.sleep(0.02)
    assert row is not None, "the relay did not publish the event"
    cloudevent = json.loads(row[0])
    assert_valid_cloudevent(cloudevent)
    assert cloudevent["type"] == "inventory.ProductRegistered.v1"
    assert cloudevent["source"] == "inventory"
    assert cloudevent["subject"] == f"product-{sku}"
    assert cloudevent["traceparent"] == trace
    assert cloudevent["correlationid"] == "order-42"
    assert cloudevent["data"] == body
