"""Payments' Account: a balance never goes negative, and each order is charged and refunded once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import RuleViolation
from shop.payments.domain import Account
from shop.payments.messages import (
    FundsDeposited,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
)


def test_a_charge_beyond_the_balance_is_declined() -> None:
    account = Account("bob")
    account.deposit(1000)
    account.charge("o1", 1500)
    assert account.pending[-1] == PaymentDeclined(
        customer_id="bob", order_id="o1", amount_cents=1500, reason="insufficient_funds"
    )
    assert account.balance_cents == 1000


def test_an_order_is_charged_once_and_refunded_once() -> None:
    account = Account("ann")
    account.deposit(1000)
    account.charge("o1", 600)
    account.charge("o1", 600)
    account.refund("o1")
    account.refund("o1")
    assert [type(e) for e in account.pending] == [FundsDeposited, PaymentCaptured, PaymentRefunded]
    assert account.balance_cents == 1000


def test_a_declined_order_is_not_charged_later() -> None:
    account = Account("cy")
    account.charge("o1", 100)
    account.deposit(1000)
    account.charge("o1", 100)
    assert account.balance_cents == 1000


def test_a_deposit_must_be_positive() -> None:
    with pytest.raises(RuleViolation):
        Account("x").deposit(0)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("deposit"), st.integers(1, 1000)),
            st.tuples(st.just("charge"), st.integers(0, 5), st.integers(0, 1500)),
            st.tuples(st.just("refund"), st.integers(0, 5)),
        ),
        max_size=30,
    )
)
def test_money_is_conserved_under_any_sequence(ops: list[tuple[object, ...]]) -> None:
    account = Account("c")
    for op in ops:
        if op[0] == "deposit":
            account.deposit(int(op[1]))
        elif op[0] == "charge":
            account.charge(f"o{op[1]}", int(op[2]))
        else:
            account.refund(f"o{op[1]}")
    deposits = sum(e.amount_cents for e in account.pending if isinstance(e, FundsDeposited))
    captured = sum(e.amount_cents for e in account.pending if isinstance(e, PaymentCaptured))
    refunded = sum(e.amount_cents for e in account.pending if isinstance(e, PaymentRefunded))
    assert account.balance_cents >= 0
    assert account.balance_cents + captured - refunded == deposits
    charged = [
        e.order_id for e in account.pending if isinstance(e, PaymentCaptured | PaymentDeclined)
    ]
    assert len(charged) == len(set(charged))
    replayed = Account("c")
    replayed.replay(account.pending)
    assert (replayed.balance_cents, replayed.captured) == (account.balance_cents, account.captured)
