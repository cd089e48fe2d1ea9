"""Who may call the shop over HTTP: every command and query of every service x every caller.

Callers: no token, an expired token, a bad signature, a token for another audience, a token
with the wrong role, a customer naming another customer's id or order, and the right
principal. Refusals are problem+json with the exact status (401 with ``WWW-Authenticate:
Bearer``, 403, or 404 for another's order, worded as for an order that does not exist), and a
refused call writes nothing to any service's event log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.access.conftest import CREDENTIALS, Api, Credentials
from tests.e2e.order_flow.settling import settle

ALICE = ("alice", ("customer",))
BOB = ("bob", ("customer",))
SAM = ("sam", ("staff",))
ROOT = ("root", ("admin",))
KINDS = [*CREDENTIALS, "wrong role", "another customer's id", "right principal"]


@dataclass(frozen=True)
class Call:
    """One message and who is meant to send it: ``staff``, ``public``, ``own name`` (the
    customer named in the message), ``own order`` (the customer of the order), ``internal``."""

    service: str
    name: str
    data: dict[str, Any]
    audience: str

    @property
    def method(self) -> str:
        return "POST" if self.name[0:3] not in ("Get", "Lis") else "GET"


ORDER = {"order_id": "o-alice"}
ALICES = {**ORDER, "customer_id": "alice"}
LINES = [{"sku": "mug", "quantity": 1}]
CALLS = [
    Call(
        "inventory", "RegisterProduct", {"sku": "cup", "name": "Cup", "price_cents": 900}, "staff"
    ),
    Call("inventory", "ReceiveStock", {"sku": "mug", "quantity": 3}, "staff"),
    Call("inventory", "ReserveStock", {**ALICES, "lines": LINES}, "internal"),
    Call("inventory", "ReleaseStock", ALICES, "internal"),
    Call("inventory", "SellStock", ALICES, "internal"),
    Call("inventory", "ReturnStock", ALICES, "internal"),
    Call("inventory", "GetProduct", {"sku": "mug"}, "public"),
    Call("inventory", "ListProducts", {}, "public"),
    Call("payments", "DepositFunds", {"customer_id": "alice", "amount_cents": 500}, "own name"),
    Call(
        "payments",
        "ChargeCustomer",
        {"customer_id": "alice", **ORDER, "amount_cents": 1},
        "internal",
    ),
    Call("payments", "RefundCustomer", {"customer_id": "alice", **ORDER}, "internal"),
    Call("payments", "GetBalance", {"customer_id": "alice"}, "own name"),
    Call(
        "orders",
        "PlaceOrder",
        {"order_id": "o-new", "customer_id": "alice", "lines": LINES},
        "own name",
    ),
    Call("orders", "CancelOrder", ORDER, "own order"),
    Call(
        "orders",
        "RecordReservation",
        {**ALICES, "lines": [{**LINES[0], "name": "Mug", "unit_price_cents": 1}], "total_cents": 1},
        "internal",
    ),
    Call("orders", "ConfirmOrder", ALICES, "internal"),
    Call("orders", "RejectOrder", {**ALICES, "reason": "out_of_stock"}, "internal"),
    Call("orders", "IndexOrderId", ALICES, "internal"),
    Call("orders", "GetOrder", ORDER, "own order"),
    Call("orders", "ListCustomerOrders", {"customer_id": "alice"}, "own name"),
]

RIGHT = {"staff": SAM, "public": ALICE, "own name": ALICE, "own order": ALICE, "internal": ROOT}
WRONG_ROLE = {"staff": ALICE, "public": SAM, "own name": SAM, "own order": SAM, "internal": ALICE}


def caller(call: Call, kind: str) -> tuple[str, tuple[str, ...]]:
    if kind == "wrong role":
        return WRONG_ROLE[call.audience]
    if kind == "another customer's id":
        return BOB
    return RIGHT[call.audience]


def expected(call: Call, kind: str) -> int:
    if kind == "no token" and call.audience == "public":
        return 200
    if kind in CREDENTIALS:
        return 401
    if call.audience == "internal":
        return 403  # not even an admin may send them over HTTP
    if call.audience == "public":
        return 200
    if kind == "wrong role":
        return 403
    if kind == "another customer's id":
        return 404 if call.audience == "own order" else 403
    return 200


def test_the_matrix_covers_every_command_and_query_of_the_shop(api: Api) -> None:
    declared = {
        (name, message)
        for name, rt in api.node.runtimes.items()
        for message in [*rt.service.commands, *rt.service.queries]
    }
    assert {(c.service, c.name) for c in CALLS} == declared


async def send(api: Api, call: Call, headers: dict[str, str]) -> httpx.Response:
    kind = "commands" if call.method == "POST" else "queries"
    path = f"/{call.service}/{kind}/{call.name}"
    if call.method == "POST":
        return await api.client.post(path, json=call.data, headers=headers)
    return await api.client.get(path, params=call.data, headers=headers)


async def shop_with_a_confirmed_order(api: Api, credentials: Credentials) -> None:
    """Product mug in stock, alice's money, and alice's order o-alice confirmed."""
    root, alice = credentials("right", *ROOT), credentials("right", *ALICE)
    steps: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        (
            "/inventory/commands/RegisterProduct",
            root,
            {"sku": "mug", "name": "Mug", "price_cents": 1200},
        ),
        ("/inventory/commands/ReceiveStock", root, {"sku": "mug", "quantity": 10}),
        (
            "/payments/commands/DepositFunds",
            alice,
            {"customer_id": "alice", "amount_cents": 10_000},
        ),
        ("/orders/commands/PlaceOrder", alice, {**ORDER, "customer_id": "alice", "lines": LINES}),
    ]
    for path, headers, body in steps:
        response = await api.client.post(path, json=body, headers=headers)
        assert response.status_code == 200, response.text
    await settle(api.node)
    order = await api.client.get("/orders/queries/GetOrder", params=ORDER, headers=alice)
    assert order.json()["status"] == "CONFIRMED", order.text


@pytest.mark.parametrize("call", CALLS, ids=lambda c: f"{c.service}.{c.name}")
async def test_each_caller_gets_exactly_its_status(
    api: Api, credentials: Credentials, call: Call
) -> None:
    await shop_with_a_confirmed_order(api, credentials)
    for kind in KINDS:  # the right principal last: it may change state
        before = await api.heads()
        response = await send(api, call, credentials(kind, *caller(call, kind)))
        status = expected(call, kind)
        assert response.status_code == status, (kind, response.text)
        if status == 200:
            continue
        assert response.headers["content-type"] == "application/problem+json", kind
        assert response.json()["status"] == status
        assert "Traceback" not in response.text
        assert "eyJ" not in response.text
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        assert await api.heads() == before, f"{kind}: a refused call wrote events"


@pytest.mark.parametrize("name", ["GetOrder", "CancelOrder"])
async def test_another_customers_order_looks_like_one_that_does_not_exist(
    api: Api, credentials: Credentials, name: str
) -> None:
    await shop_with_a_confirmed_order(api, credentials)
    bob = credentials("right", *BOB)
    call = next(c for c in CALLS if c.name == name)
    theirs = await send(api, call, bob)
    missing = await send(api, Call(call.service, name, {"order_id": "o-nobody"}, ""), bob)
    assert (theirs.status_code, missing.status_code) == (404, 404)
    strip = lambda body: {k: v for k, v in body.items() if k != "instance"}  # noqa: E731
    assert strip(theirs.json()) | {"detail": ""} == strip(missing.json()) | {"detail": ""}
    assert theirs.json()["detail"] == "no order 'o-alice'"
    assert missing.json()["detail"] == "no order 'o-nobody'"


def _answer(response: httpx.Response, order_id: str) -> tuple[int, Any]:
    """Returns a response as a customer sees it, with the order id they chose taken out."""
    body = response.json()
    body.pop("consistency_token", None)
    body.pop("position", None)  # the log's position moves with every customer's commands
    body.pop("instance", None)
    return response.status_code, orjson.loads(orjson.dumps(body).replace(order_id.encode(), b"ID"))


CAROL = ("carol", ("customer",))


@pytest.mark.parametrize("customer_id", ["alice", None])
async def test_placing_another_customers_order_id_answers_as_a_new_id_would(
    api: Api, credentials: Credentials, customer_id: str | None
) -> None:
    """Order ids are per customer: whether alice and carol have an o-alice changes nothing bob
    is told, by CancelOrder and GetOrder before and after he places his own, or by PlaceOrder."""
    await shop_with_a_confirmed_order(api, credentials)
    bob, alice = credentials("right", *BOB), credentials("right", *ALICE)
    carols = {**ORDER, "customer_id": "carol", "lines": LINES}
    placed = await api.client.post(
        "/orders/commands/PlaceOrder", json=carols, headers=credentials("right", *CAROL)
    )
    assert placed.status_code == 200
    await settle(api.node)
    answers: dict[str, list[tuple[int, Any]]] = {}
    for order_id in ("o-alice", "o-fresh"):  # an id two others used, and one nobody used
        place = {"order_id": order_id, "customer_id": "bob", "lines": LINES}
        about = {"order_id": order_id} | ({"customer_id": customer_id} if customer_id else {})
        got = [
            await api.client.post("/orders/commands/CancelOrder", json=about, headers=bob),
            await api.client.get("/orders/queries/GetOrder", params=about, headers=bob),
            await api.client.post("/orders/commands/PlaceOrder", json=place, headers=bob),
            await api.client.post("/orders/commands/PlaceOrder", json=place, headers=bob),
        ]
        await settle(api.node)
        got += [
            await api.client.get("/orders/queries/GetOrder", params=about, headers=bob),
            await api.client.post("/orders/commands/CancelOrder", json=about, headers=bob),
        ]
        answers[order_id] = [_answer(r, order_id) for r in got]
    assert answers["o-alice"] == answers["o-fresh"]
    assert [status for status, _ in answers["o-alice"]] == (
        [404, 404, 200, 409, 404, 404] if customer_id else [404, 404, 200, 409, 200, 409]
    )
    listed = await api.client.get(
        "/orders/queries/ListCustomerOrders", params={"customer_id": "bob"}, headers=bob
    )
    assert sorted(o["order_id"] for o in listed.json()["items"]) == ["o-alice", "o-fresh"]
    theirs = await api.client.get("/orders/queries/GetOrder", params=ORDER, headers=alice)
    assert theirs.json()["customer_id"] == "alice"
    assert theirs.json()["status"] == "CONFIRMED"


async def test_an_admin_names_the_customer_of_an_order_id_several_customers_use(
    api: Api, credentials: Credentials
) -> None:
    await shop_with_a_confirmed_order(api, credentials)
    root, bob = credentials("right", *ROOT), credentials("right", *BOB)
    alone = await api.client.post("/orders/commands/CancelOrder", json=ORDER, headers=root)
    assert alone.status_code == 200  # one customer used o-alice: the admin needs no customer_id
    place = {**ORDER, "customer_id": "bob", "lines": LINES}
    assert (
        await api.client.post("/orders/commands/PlaceOrder", json=place, headers=bob)
    ).is_success
    await settle(api.node)
    both = await api.client.get("/orders/queries/GetOrder", params=ORDER, headers=root)
    assert both.status_code == 422
    assert both.json()["errors"][0]["loc"] == ["query", "customer_id"]
    again = await api.client.post("/orders/commands/CancelOrder", json=ORDER, headers=root)
    assert again.status_code == 422
    assert again.json()["errors"][0]["loc"] == ["body", "customer_id"]
    for customer, status in (("alice", "CANCELLED"), ("bob", "REJECTED")):
        one = await api.client.get(
            "/orders/queries/GetOrder", params={**ORDER, "customer_id": customer}, headers=root
        )
        assert (one.json()["customer_id"], one.json()["status"]) == (customer, status)


async def test_a_customer_lists_only_their_own_orders(api: Api, credentials: Credentials) -> None:
    await shop_with_a_confirmed_order(api, credentials)
    alice = credentials("right", *ALICE)
    listed = await api.client.get(
        "/orders/queries/ListCustomerOrders", params={"customer_id": "alice"}, headers=alice
    )
    assert [o["order_id"] for o in listed.json()["items"]] == ["o-alice"]
    order = await api.client.get("/orders/queries/GetOrder", params=ORDER, headers=alice)
    assert order.json()["lines"][0]["name"] == "Mug"


async def test_the_customer_who_placed_an_order_is_on_the_payment_event(
    api: Api, credentials: Credentials
) -> None:
    await shop_with_a_confirmed_order(api, credentials)
    payments = await api.node.runtime("payments").events.read_all(0, 100)
    (captured,) = [e for e in payments if e.type.startswith("payments.PaymentCaptured")]
    assert captured.principal == {
        "subject": "service:payments",
        "roles": ["service"],
        "service": "payments",
        "on_behalf_of": "alice",
    }
    placed = [
        e
        for e in await api.node.runtime("orders").events.read_all(0, 100)
        if e.type.startswith("orders.OrderPlaced")
    ]
    assert placed[0].principal == {"subject": "alice", "roles": ["customer"]}
    assert captured.metadata["correlation_id"] == placed[0].metadata["correlation_id"]


@pytest.mark.parametrize(
    ("kind", "who", "status"),
    [("no token", ALICE, 401), ("expired", ALICE, 401), ("wrong role", SAM, 403)],
)
@pytest.mark.parametrize("name", ["PlaceOrder", "CancelOrder", "GetOrder", "GetBalance"])
async def test_callers_without_the_right_learn_nothing_of_the_message_schema(
    api: Api,
    credentials: Credentials,
    name: str,
    kind: str,
    who: tuple[str, tuple[str, ...]],
    status: int,
) -> None:
    call = next(c for c in CALLS if c.name == name)
    malformed = Call(call.service, name, {}, call.audience)
    response = await send(api, malformed, credentials(kind, *who))
    assert response.status_code == status, response.text
    assert "errors" not in response.json()
