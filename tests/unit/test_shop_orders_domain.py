"""The Order aggregate: the order flow's states, and steps that arrive late or twice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import NotFoundError, RuleViolation
from shop.orders.domain import Order
from shop.orders.messages import OrderLine, OrderRejected, PricedLine

LINE = OrderLine(sku="mug", quantity=2)
PRICED = [PricedLine(sku="mug", name="Mug", quantity=2, unit_price_cents=500)]


def placed() -> Order:
    order = Order("o1")
    order.place("ann", [LINE])
    return order


def test_a_placed_order_is_pending() -> None:
    assert placed().status == "PENDING"


def test_an_order_id_is_placed_once() -> None:
    with pytest.raises(RuleViolation):
        placed().place("ann", [LINE])


def test_a_reserved_paid_order_is_confirmed_with_its_total() -> None:
    order = placed()
    order.reserved(PRICED, 1000)
    order.confirm()
    assert (order.status, order.total_cents) == ("CONFIRMED", 1000)


def test_confirmation_needs_a_reservation() -> None:
    order = placed()
    order.confirm()
    assert order.status == "PENDING"


def test_a_rejection_says_whether_stock_was_reserved() -> None:
    unreserved, reserved = placed(), placed()
    unreserved.reject("out_of_stock")
    reserved.reserved(PRICED, 1000)
    reserved.reject("insufficient_funds")
    assert isinstance(unreserved.pending[-1], OrderRejected)
    assert isinstance(reserved.pending[-1], OrderRejected)
    assert (unreserved.pending[-1].reserved, reserved.pending[-1].reserved) == (False, True)


def test_only_a_confirmed_order_can_be_cancelled() -> None:
    with pytest.raises(NotFoundError):
        Order("nope").cancel()
    pending = placed()
    with pytest.raises(RuleViolation):
        pending.cancel()
    pending.reject("out_of_stock")
    with pytest.raises(RuleViolation):
        pending.cancel()


steps = st.lists(
    st.sampled_from(["reserved", "confirm", "reject", "cancel"]), min_size=0, max_size=12
)
ALLOWED = {
    ("PENDING", "CONFIRMED"),
    ("PENDING", "REJECTED"),
    ("CONFIRMED", "CANCELLED"),
}


@given(steps)
def test_status_only_moves_along_the_flow(sequence: list[str]) -> None:
    order = placed()
    for step in sequence:
        before = order.status
        if step == "reserved":
            order.reserved(PRICED, 1000)
        elif step == "confirm":
            order.confirm()
        elif step == "reject":
            order.reject("insufficient_funds")
        else:
            try:
                order.cancel()
            except RuleViolation:
                assert before != "CONFIRMED"
        assert order.status == before or (before, order.status) in ALLOWED
    replayed = Order("o1")
    replayed.replay(order.pending)
    assert (replayed.status, replayed.priced) == (order.status, order.priced)
