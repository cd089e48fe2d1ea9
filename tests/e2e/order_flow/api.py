"""A small client of the shop's HTTP API for the end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx

FINAL = {"CONFIRMED", "REJECTED", "CANCELLED"}


async def command(
    http: httpx.AsyncClient, service: str, name: str, /, **body: Any
) -> httpx.Response:
    """Returns the response to one command."""
    return await http.post(f"/{service}/commands/{name}", json=body)


async def ok(http: httpx.AsyncClient, service: str, name: str, /, **body: Any) -> dict[str, Any]:
    """Returns the body of a command that must succeed."""
    response = await command(http, service, name, **body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def query(
    http: httpx.AsyncClient,
    service: str,
    name: str,
    token: str | None = None,
    /,
    **params: Any,
) -> httpx.Response:
    """Returns the response to one query (waiting for ``token`` if given)."""
    headers = {"X-Consistency-Token": token} if token else {}
    return await http.get(f"/{service}/queries/{name}", params=params, headers=headers)


async def answer(http: httpx.AsyncClient, service: str, name: str, /, **params: Any) -> Any:
    """Returns the body of a query that must succeed."""
    response = await query(http, service, name, **params)
    assert response.status_code == 200, response.text
    return response.json()


async def product(http: httpx.AsyncClient, sku: str, price: int, stock: int) -> None:
    """Registers a product and receives its stock."""
    await ok(
        http, "inventory", "RegisterProduct", sku=sku, name=f"Product {sku}", price_cents=price
    )
    if stock:
        await ok(http, "inventory", "ReceiveStock", sku=sku, quantity=stock)


async def order(
    http: httpx.AsyncClient, order_id: str, customer: str, **lines: int
) -> dict[str, Any]:
    """Places an order of ``sku=quantity`` lines and returns the command's answer."""
    items = [{"sku": sku, "quantity": q} for sku, q in lines.items()]
    return await ok(
        http, "orders", "PlaceOrder", order_id=order_id, customer_id=customer, lines=items
    )


def customer_of(order_id: str) -> str:
    """Returns the customer of an order id made as ``<customer>-<k>`` (order ids are per
    customer, so an admin names the customer to cancel one)."""
    return order_id.split("-")[0]
