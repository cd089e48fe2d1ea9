"""Inventory's aggregates: reservations are all or none, and stock figures never go wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import RuleViolation
from shop.inventory.domain import (
    Product,
    Reservation,
    merge_lines,
    reservation_key,
    reserve_all_or_none,
)
from shop.inventory.messages import (
    StockLine,
    StockReservationMade,
    StockReservationRefused,
    StockReserved,
)

SKUS = ["a", "b", "c"]


def stocked(sku: str, quantity: int, price: int = 100) -> Product:
    product = Product(sku)
    product.register(f"Product {sku}", price)
    if quantity:
        product.receive(quantity)
    return product


def test_a_reservation_holds_every_line_at_the_current_price() -> None:
    products = {"a": stocked("a", 5, price=250), "b": stocked("b", 1, price=1000)}
    reservation = Reservation(reservation_key("c1", "o1"))
    reserve_all_or_none(reservation, {"a": 2, "b": 1}, products)
    (made,) = reservation.pending
    assert isinstance(made, StockReservationMade)
    assert made.total_cents == 2 * 250 + 1000
    assert [(line.sku, line.name, line.unit_price_cents) for line in made.lines] == [
        ("a", "Product a", 250),
        ("b", "Product b", 1000),
    ]
    assert (products["a"].reserved, products["a"].available) == (2, 3)
    assert products["b"].available == 0


def test_one_short_line_reserves_nothing() -> None:
    products = {"a": stocked("a", 5), "b": stocked("b", 1)}
    reservation = Reservation(reservation_key("c1", "o1"))
    reserve_all_or_none(reservation, {"a": 2, "b": 2}, products)
    (refused,) = reservation.pending
    assert refused == StockReservationRefused(
        order_id="o1", customer_id="c1", reason="out_of_stock", skus=["b"]
    )
    assert not products["a"].pending[2:]
    assert products["a"].reserved == products["b"].reserved == 0


def test_an_unknown_product_is_the_reason_before_a_short_one() -> None:
    products = {"a": stocked("a", 0), "ghost": Product("ghost")}
    reservation = Reservation(reservation_key("c1", "o1"))
    reserve_all_or_none(reservation, {"a": 1, "ghost": 1}, products)
    (refused,) = reservation.pending
    assert isinstance(refused, StockReservationRefused)
    assert (refused.reason, refused.skus) == ("unknown_product", ["ghost"])
    assert not products["ghost"].exists


def test_a_decided_reservation_is_not_decided_again() -> None:
    products = {"a": stocked("a", 5)}
    reservation = Reservation(reservation_key("c1", "o1"))
    reserve_all_or_none(reservation, {"a": 1}, products)
    reserve_all_or_none(reservation, {"a": 1}, products)
    assert len(reservation.pending) == 1
    assert products["a"].reserved == 1


def test_holding_more_than_available_is_refused() -> None:
    with pytest.raises(RuleViolation):
        stocked("a", 1).hold("c1", "o1", 2)


def test_release_sell_and_restock_act_once_per_order() -> None:
    product = stocked("a", 5)
    product.hold("c1", "o1", 2)
    product.hold("c1", "o2", 1)
    product.release("c1", "o2")
    product.release("c1", "o2")
    product.sell("c1", "o1")
    product.sell("c1", "o1")
    assert (product.on_hand, product.reserved) == (3, 0)
    product.restock("c1", "o1")
    product.restock("c1", "o1")
    product.restock("c1", "o2")
    assert (product.on_hand, product.reserved) == (5, 0)


def test_two_customers_orders_of_one_id_are_held_apart() -> None:
    product = stocked("a", 5)
    product.hold("ann", "o1", 2)
    product.hold("bob", "o1", 1)
    assert product.reserved == 3
    product.sell("ann", "o1")
    product.release("bob", "o1")
    assert (product.on_hand, product.reserved, product.sold) == (3, 0, {"ann/o1": 2})


def test_merge_lines_adds_quantities_of_the_same_sku() -> None:
    lines = [StockLine(sku="a", quantity=1), StockLine(sku="b", quantity=2)]
    assert merge_lines([*lines, StockLine(sku="a", quantity=3)]) == {"a": 4, "b": 2}


operations = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.sampled_from(SKUS), st.integers(1, 5)),
        st.tuples(
            st.just("reserve"),
            st.integers(0, 9),
            st.dictionaries(st.sampled_from([*SKUS, "ghost"]), st.integers(1, 4), min_size=1),
        ),
        st.tuples(st.sampled_from(["release", "sell", "restock"]), st.integers(0, 9)),
    ),
    max_size=40,
)


@given(operations)
def test_stock_figures_hold_under_any_sequence_of_operations(ops: list[tuple[object, ...]]) -> None:
    products = {sku: stocked(sku, 0) for sku in SKUS}
    reservations: dict[str, Reservation] = {}
    received = dict.fromkeys(SKUS, 0)
    for op in ops:
        if op[0] == "receive":
            sku, quantity = str(op[1]), int(op[2])
            products[sku].receive(quantity)
            received[sku] += quantity
            continue
        key = reservation_key(f"c{int(op[1]) % 2}", f"o{int(op[1]) // 2}")  # ids shared
        reservation = reservations.setdefault(key, Reservation(key))
        if op[0] == "reserve":
            wanted = dict(op[2])
            found = {sku: products.get(sku, Product(sku)) for sku in wanted}
            reserve_all_or_none(reservation, wanted, found)
            continue
        for sku in reservation.skus:
            getattr(products[sku], str(op[0]))(reservation.customer_id, reservation.order_id)

    for sku, product in products.items():
        assert product.available == product.on_hand - product.reserved >= 0
        sold = sum(product.sold.values())
        assert product.on_hand + sold == received[sku]
        replayed = Product(sku)
        replayed.replay(product.pending)
        assert (replayed.on_hand, replayed.held, replayed.sold) == (
            product.on_hand,
            product.held,
            product.sold,
        )
    for reservation in reservations.values():
        assert len(reservation.pending) <= 1
        held = {sku for sku, p in products.items() if reservation.id in p.held}
        if held:
            assert held == set(reservation.skus)
        if reservation.refused:
            assert not any(
                isinstance(e, StockReserved)
                and reservation_key(e.customer_id, e.order_id) == reservation.id
                for p in products.values()
                for e in p.pending
            )
