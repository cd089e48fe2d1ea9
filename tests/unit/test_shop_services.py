"""The shop's wiring: every event decodable, the saga's commands internal, reactions as declared."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import bicameral
import shop
from bicameral import Event, Service
from shop import app
from shop.inventory import messages as inventory_messages
from shop.inventory import reactions as inventory_reactions
from shop.orders import messages as orders_messages
from shop.orders import reactions as orders_reactions
from shop.payments import messages as payments_messages
from shop.payments import reactions as payments_reactions

SERVICES = {s.name: s for s in app.services()}
PUBLIC = {
    "inventory": {"RegisterProduct", "ReceiveStock"},
    "orders": {"PlaceOrder", "CancelOrder"},
    "payments": {"DepositFunds"},
}


def events_of(module: ModuleType) -> list[type[Event]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Event) and cls.__module__ == module.__name__
    ]


@pytest.mark.parametrize(
    ("service", "module"),
    [
        ("inventory", inventory_messages),
        ("orders", orders_messages),
        ("payments", payments_messages),
    ],
)
def test_a_service_can_decode_every_event_it_stores(service: str, module: ModuleType) -> None:
    registry = SERVICES[service].registry
    assert all(cls.type_name in registry for cls in events_of(module))
    assert all(cls.message_name.startswith(f"{service}.") for cls in events_of(module))


@pytest.mark.parametrize("service", sorted(PUBLIC))
def test_only_the_contract_commands_are_public(service: str) -> None:
    handlers = SERVICES[service].commands.values()
    assert {h.command.message_name for h in handlers if not h.internal} == PUBLIC[service]


def test_every_reaction_sends_commands_of_its_own_service() -> None:
    for service in SERVICES.values():
        for reaction in service.reactions:
            own = reaction.source == service.name
            assert not own or reaction.name == "orders.index_placed", reaction.name
            hints = inspect.get_annotations(reaction.fn, eval_str=True)
            returned = str(hints["return"])
            assert any(name in returned for name in service.commands), reaction.name


def test_the_reactions_carry_the_order_through() -> None:
    placed = orders_messages.OrderPlaced(
        order_id="o1", customer_id="c", lines=[orders_messages.OrderLine(sku="a", quantity=2)]
    )
    reserve = inventory_reactions.reserve_placed(placed)
    assert (reserve.order_id, reserve.customer_id) == ("o1", "c")
    assert (reserve.lines[0].sku, reserve.lines[0].quantity) == ("a", 2)
    made = inventory_messages.StockReservationMade(
        order_id="o1",
        customer_id="c",
        lines=[inventory_messages.PricedLine(sku="a", name="A", quantity=2, unit_price_cents=5)],
        total_cents=10,
    )
    noted = orders_reactions.record_reserved(made)
    assert (noted.customer_id, noted.total_cents, noted.lines[0].name) == ("c", 10, "A")
    reserved = orders_messages.OrderReserved(
        order_id="o1", customer_id="c", lines=noted.lines, total_cents=10
    )
    charge = payments_reactions.charge_reserved_order(reserved)
    assert (charge.customer_id, charge.amount_cents) == ("c", 10)
    unreserved = orders_messages.OrderRejected(
        order_id="o1", customer_id="c", reason="out_of_stock", reserved=False
    )
    assert inventory_reactions.release_rejected(unreserved) is None
    compensated = inventory_reactions.release_rejected(
        unreserved.model_copy(update={"reserved": True})
    )
    assert compensated is not None
    assert (compensated.order_id, compensated.customer_id) == ("o1", "c")


def test_the_shop_has_its_three_services() -> None:
    assert sorted(SERVICES) == ["inventory", "orders", "payments"]
    assert all(isinstance(s, Service) for s in SERVICES.values())


def test_the_shop_uses_only_bicameral_public_api() -> None:
    for path in Path(shop.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bicameral"):
                assert node.module == "bicameral", f"{path}: imports {node.module}"
                assert {a.name for a in node.names} <= set(bicameral.__all__), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("bicameral.") for a in node.names), path
