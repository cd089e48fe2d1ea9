"""The shop's bounds: every integer it accepts or answers has a maximum, and no total a read
model keeps can pass 2^53 - 1, whatever sequence of commands is sent."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from bicameral import MAX_MONEY, MAX_SAFE_INTEGER, RuleViolation
from shop.bounds import MAX_LINES, MAX_PRICE_CENTS, MAX_STOCK, MAX_UNITS
from shop.inventory import messages as inventory_messages
from shop.inventory import queries as inventory_queries
from shop.inventory.domain import Product
from shop.orders import messages as orders_messages
from shop.orders import queries as orders_queries
from shop.payments import messages as payments_messages
from shop.payments import queries as payments_queries
from shop.payments.domain import Account

MODULES = [
    inventory_messages,
    inventory_queries,
    orders_messages,
    orders_queries,
    payments_messages,
    payments_queries,
]


def models_of(module: ModuleType) -> list[type[BaseModel]]:
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == module.__name__
    ]


def integers(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            yield path, schema
        for key, value in schema.items():
            yield from integers(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from integers(value, f"{path}/{i}")


def test_an_order_total_fits_in_money() -> None:
    assert MAX_LINES * MAX_UNITS * MAX_PRICE_CENTS <= MAX_MONEY <= MAX_SAFE_INTEGER
    assert MAX_STOCK <= MAX_SAFE_INTEGER


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_integer_field_has_an_upper_bound(module: ModuleType) -> None:
    found = 0
    for model in models_of(module):
        for mode in ("validation", "serialization"):
            for path, schema in integers(model.model_json_schema(mode=mode)):
                found += 1
                assert schema.get("maximum", MAX_SAFE_INTEGER + 1) <= MAX_SAFE_INTEGER, (
                    f"{model.__name__}{path} has no maximum"
                )
    assert found


big = st.integers(1, MAX_MONEY)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("deposit"), big),
            st.tuples(st.just("charge"), st.integers(0, 3), big),
            st.tuples(st.just("refund"), st.integers(0, 3)),
        ),
        max_size=25,
    )
)
def test_no_balance_passes_the_limit_whatever_is_deposited(ops: list[tuple[Any, ...]]) -> None:
    account = Account("c")
    for op in ops:
        try:
            if op[0] == "deposit":
                account.deposit(op[1])
            elif op[0] == "charge":
                account.charge(f"o{op[1]}", op[2])
            else:
                account.refund(f"o{op[1]}")
        except RuleViolation:
            assert op[0] == "deposit"
        assert 0 <= account.balance_cents <= account.held_cents <= MAX_MONEY
    running = 0  # what the balances read model adds up
    for event in account.pending:
        sign = -1 if type(event).__name__ == "PaymentCaptured" else 1
        if type(event).__name__ != "PaymentDeclined":
            running += sign * event.amount_cents
        assert 0 <= running <= MAX_MONEY


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("receive"), st.integers(1, MAX_UNITS)),
            st.tuples(st.just("hold"), st.integers(0, 3), st.integers(1, MAX_UNITS)),
            st.tuples(st.sampled_from(["release", "sell", "restock"]), st.integers(0, 3)),
        ),
        max_size=40,
    ),
    st.integers(0, MAX_STOCK),
)
def test_no_stock_figure_passes_the_limit(ops: list[tuple[Any, ...]], start: int) -> None:
    product = Product("p")
    product.register("P", MAX_PRICE_CENTS)
    product.on_hand = start  # as if received earlier, in many receipts
    for op in ops:
        try:
            if op[0] == "receive":
                product.receive(op[1])
            elif op[0] == "hold":
                product.hold("c", f"o{op[1]}", op[2])
            else:
                getattr(product, op[0])("c", f"o{op[1]}")
        except RuleViolation:
            assert op[0] in ("receive", "hold")
        assert 0 <= product.reserved <= product.on_hand
        assert product.on_hand + sum(product.sold.values()) <= MAX_STOCK
