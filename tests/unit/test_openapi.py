"""The OpenAPI document is the API's contract: valid OpenAPI, a request body with a schema and
a valid example for every command, every status an operation answers, problem+json errors,
bearer security and roles per operation; the documentation pages load nothing from a CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from bicameral.http.app import create_app
from bicameral.http.docs import ASSETS
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from shop.app import services

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _settings(tmp_path: Path) -> Settings:
    memory = {"events_url": "memory://", "reads_url": "memory://", "transport_url": "memory://"}
    return Settings.load(environ={}, data_dir=tmp_path, **memory)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(_settings(tmp_path), services(), ROLES)
    transport = httpx.ASGITransport(app=create_app(node, manage_node=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    got = await client.get("/openapi.json")
    assert got.status_code == 200
    body: dict[str, Any] = got.json()
    return body


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]


def _response(doc: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    ref = response.get("$ref")
    if ref is None:
        return response
    found: dict[str, Any] = doc["components"]["responses"][ref.rsplit("/", 1)[1]]
    return found


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_every_command_and_query_of_the_shop_is_an_operation(doc: dict[str, Any]) -> None:
    expected = set()
    for service in services():
        for handler in service.commands.values():
            if not handler.internal:
                expected.add(f"/{service.name}/commands/{handler.command.message_name}")
        for qhandler in service.queries.values():
            expected.add(f"/{service.name}/queries/{qhandler.query.message_name}")
    assert expected <= set(doc["paths"])
    assert not [p for p in doc["paths"] if "Reserve" in p or "Charge" in p]  # internal


def test_every_command_has_a_body_with_its_schema_and_a_valid_example(
    doc: dict[str, Any],
) -> None:
    messages = {
        f"/{s.name}/commands/{h.command.message_name}": h.command
        for s in services()
        for h in s.commands.values()
    }
    commands = [(p, o) for p, m, o in _operations(doc) if m == "post" and p in messages]
    assert commands
    for path, operation in commands:
        body = operation["requestBody"]
        assert body["required"] is True
        media = body["content"]["application/json"]
        name = path.rsplit("/", 1)[1]
        assert media["schema"] == {"$ref": f"#/components/schemas/{name}"}
        messages[path].model_validate(media["example"])  # the example is a valid message


def test_every_error_is_problem_json_with_the_one_problem_schema(doc: dict[str, Any]) -> None:
    for path, method, operation in _operations(doc):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert _response(doc, response)["content"] == PROBLEM, (path, method, status)
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_each_operation_lists_the_statuses_it_can_answer(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    command = set(paths["/orders/commands/PlaceOrder"]["post"]["responses"])
    assert command == {"200", "400", "401", "403", "404", "409", "413", "415", "422", "503"}
    query = set(paths["/orders/queries/GetOrder"]["get"]["responses"])
    assert query == {"200", "400", "401", "403", "404", "413", "422", "503"}
    public = set(paths["/inventory/queries/GetProduct"]["get"]["responses"])
    assert public == query - {"403"}  # anyone may ask; a bad token is still a 401
    ok = paths["/orders/queries/GetOrder"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OrderView"}
    placed = paths["/orders/commands/PlaceOrder"]["post"]["responses"]["200"]
    assert placed["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CommandResponse"
    }


def test_security_and_roles_are_stated_per_operation(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, _, operation in _operations(doc):
        assert "security" in operation, path
        assert "Who may call it" in operation["description"], path
    public = doc["paths"]["/inventory/queries/GetProduct"]["get"]
    assert public["security"] == []
    assert public["x-roles"] == []
    deposit = doc["paths"]["/payments/commands/DepositFunds"]["post"]
    assert deposit["security"] == [{"bearer": []}]
    assert deposit["x-roles"] == ["admin", "customer"]
    assert "`customer_id` is the caller's subject" in deposit["description"]
    register = doc["paths"]["/inventory/commands/RegisterProduct"]["post"]
    assert "roles `admin` or `staff`." in register["description"]
    assert doc["paths"]["/health"]["get"]["security"] == []


def test_metrics_are_text_for_admins(doc: dict[str, Any]) -> None:
    metrics = doc["paths"]["/metrics"]["get"]
    assert set(metrics["responses"]["200"]["content"]) == {"text/plain"}
    assert metrics["security"] == [{"bearer": []}]
    assert metrics["x-roles"] == ["admin"]
    assert {"401", "403"} <= set(metrics["responses"])


def test_headers_are_documented_with_their_limits(doc: dict[str, Any]) -> None:
    command = doc["paths"]["/inventory/commands/ReceiveStock"]["post"]
    key = next(p for p in command["parameters"] if p["name"] == "Idempotency-Key")
    assert (key["in"], key["schema"]["maxLength"]) == ("header", 200)
    query = doc["paths"]["/inventory/queries/GetProduct"]["get"]
    names = {(p["in"], p["name"]) for p in query["parameters"]}
    assert {("query", "sku"), ("header", "X-Consistency-Token")} <= names
    assert ("header", "X-Consistency-Timeout") in names


async def test_a_process_behind_a_proxy_documents_the_whole_api(tmp_path: Path) -> None:
    node = Node(_settings(tmp_path), [s for s in services() if s.name == "orders"], ["query-api"])
    alone = create_app(node, manage_node=False).openapi()
    assert [p for p in alone["paths"] if "/orders/" in p] == [
        "/orders/queries/GetOrder",
        "/orders/queries/ListCustomerOrders",
        "/orders/subscriptions/GetOrder",
        "/orders/subscriptions/ListCustomerOrders",
    ]
    assert not [p for p in alone["paths"] if "/inventory/" in p]
    whole = create_app(node, manage_node=False, api=services()).openapi()
    assert "/inventory/commands/RegisterProduct" in whole["paths"]
    validate(whole)


async def test_the_documentation_pages_load_their_assets_from_this_server(
    client: httpx.AsyncClient,
) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, page
        assert all(s.startswith("/docs/assets/") for s in sources), sources
        assert "cdn" not in html.lower()
    for name, media_type in ASSETS.items():
        got = await client.get(f"/docs/assets/{name}")
        assert got.status_code == 200
        assert got.headers["content-type"] == media_type
        assert len(got.content) > 1000
    missing = await client.get("/docs/assets/secret.txt")
    assert missing.status_code == 404
