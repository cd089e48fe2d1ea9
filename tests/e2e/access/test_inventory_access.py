"""Access to inventory and the operational endpoints over HTTP, beyond the matrix of
``test_shop_access``: read models untouched by refusals, the principal on events, ``/metrics``
for admins only, descriptions public."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.access.conftest import Api, Credentials

# (name, method, path, body or params)
CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "RegisterProduct": (
        "POST",
        "/inventory/commands/RegisterProduct",
        {"sku": "cup", "name": "Cup", "price_cents": 900},
    ),
    "ReceiveStock": ("POST", "/inventory/commands/ReceiveStock", {"sku": "mug", "quantity": 3}),
    "GetProduct": ("GET", "/inventory/queries/GetProduct", {"sku": "mug"}),
    "ListProducts": ("GET", "/inventory/queries/ListProducts", {}),
}
# caller kind -> (subject, roles)
PRINCIPALS = {
    "wrong role": ("carol", ("customer",)),
    "staff": ("sam", ("staff",)),
    "admin": ("root", ("admin",)),
}


async def call(api: Api, name: str, headers: dict[str, str]) -> Any:
    method, path, data = CALLS[name]
    if method == "POST":
        return await api.client.post(path, json=data, headers=headers)
    return await api.client.get(path, params=data, headers=headers)


async def seed(api: Api, credentials: Credentials) -> str:
    """Registers product mug; returns the consistency token of that."""
    admin = credentials("right", "root", ("admin",))
    body = {"sku": "mug", "name": "Mug", "price_cents": 1200}
    response = await api.client.post(
        "/inventory/commands/RegisterProduct", json=body, headers=admin
    )
    assert response.status_code == 200, response.text
    return str(response.headers["X-Consistency-Token"])


async def test_a_refused_command_leaves_the_read_model_unchanged(
    api: Api, credentials: Credentials
) -> None:
    await seed(api, credentials)
    carol = credentials("right", "carol", ("customer",))
    refused = await call(api, "ReceiveStock", carol)
    assert refused.status_code == 403
    sam = credentials("right", "sam", ("staff",))
    done = await call(api, "ReceiveStock", sam)
    token = done.headers["X-Consistency-Token"]
    product = await api.client.get(
        "/inventory/queries/GetProduct",
        params={"sku": "mug"},
        headers={"X-Consistency-Token": token},
    )
    assert product.json()["on_hand"] == 3


async def test_events_carry_the_principal_who_sent_the_command(
    api: Api, credentials: Credentials
) -> None:
    await seed(api, credentials)
    await call(api, "ReceiveStock", credentials("right", "sam", ("staff",)))
    events = await api.node.runtime("inventory").events.read_all(0, 10)
    assert [e.principal for e in events] == [
        {"subject": "root", "roles": ["admin"]},
        {"subject": "sam", "roles": ["staff"]},
    ]


@pytest.mark.parametrize(("kind", "status"), [("no token", 401), ("staff", 403), ("admin", 200)])
async def test_metrics_need_the_admin_role(
    api: Api, credentials: Credentials, kind: str, status: int
) -> None:
    subject, roles = PRINCIPALS.get(kind, ("x", ()))
    response = await api.client.get("/metrics", headers=credentials(kind, subject, roles))
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs"])
async def test_descriptions_stay_public(api: Api, path: str) -> None:
    assert (await api.client.get(path)).status_code == 200


async def test_the_api_document_names_the_bearer_scheme(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_an_authorization_header_of_another_scheme_is_refused(api: Api) -> None:
    response = await call(api, "ListProducts", {"Authorization": "Basic cm9vdDpyb290"})
    assert response.status_code == 401
