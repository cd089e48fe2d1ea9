"""The Order aggregate: the order flow's states, and steps that arrive late or twice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import InvalidMessageError, NotFoundError, RuleViolation
from shop.orders.domain import Order, OrderIdIndex
from shop.orders.messages import OrderLine, OrderPlaced, OrderRejected, PricedLine, order_key

LINE = OrderLine(sku="mug", quantity=2)
PRICED = [PricedLine(sku="mug", name="Mug", quantity=2, unit_price_cents=500)]


def placed() -> Order:
    order = Order(order_key("ann", "o1"))
    order.place([LINE])
    return order


def test_a_placed_order_is_pending() -> None:
    assert placed().status == "PENDING"


def test_an_order_id_is_placed_once() -> None:
    with pytest.raises(RuleViolation):
        placed().place([LINE])


def test_orders_are_per_customer() -> None:
    order = placed()
    assert (order.customer_id, order.order_id) == ("ann", "o1")
    assert order.pending[0] == OrderPlaced(order_id="o1", customer_id="ann", lines=[LINE])
    other = Order(order_key("bob", "o1"))
    other.place([LINE])  # bob's o1 is another order
    assert Order.stream_id(order.id) != Order.stream_id(other.id)


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
        Order(order_key("ann", "nope")).cancel()
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
    replayed = Order(order_key("ann", "o1"))
    replayed.replay(order.pending)
    assert (replayed.status, replayed.priced) == (order.status, order.priced)


def test_an_order_id_index_names_each_customer_once() -> None:
    index = OrderIdIndex("o1")
    index.take("ann")
    index.take("ann")
    index.take("bob")
    assert index.customers == ["ann", "bob"]
    assert [e.customer_id for e in index.pending] == ["ann", "bob"]
    assert Order.stream_id(order_key("ann", "o1")) != OrderIdIndex.stream_id("o1")


def test_the_index_finds_the_customer_of_an_id_for_a_caller() -> None:
    index = OrderIdIndex("o1")
    assert index.customer("root") == "root"  # nobody used it: the caller's own (none)
    index.take("ann")
    assert index.customer("root") == "ann"  # one customer used it
    assert index.customer("ann") == "ann"
    index.take("bob")
    assert index.customer("bob") == "bob"  # the caller's own comes first
    with pytest.raises(InvalidMessageError) as info:
        index.customer("root")  # several: name one
    assert info.value.errors[0]["loc"] == ["body", "customer_id"]
