"""Money and Quantity: strict integers whose bounds keep sums exact and appear in schemas."""

from __future__ import annotations

from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

import bicameral
from bicameral import MAX_MONEY, MAX_QUANTITY, MAX_SAFE_INTEGER, Money, Quantity


class Amounts(BaseModel):
    money: Money
    units: Quantity


def test_the_types_are_public() -> None:
    for name in ("Money", "Quantity", "MAX_MONEY", "MAX_QUANTITY", "MAX_SAFE_INTEGER"):
        assert name in bicameral.__all__


def test_nine_of_the_largest_amounts_still_add_up_exactly() -> None:
    assert MAX_SAFE_INTEGER == 2**53 - 1
    assert 9 * MAX_MONEY <= MAX_SAFE_INTEGER
    assert MAX_QUANTITY <= MAX_MONEY


def test_the_schema_says_the_bounds() -> None:
    props = Amounts.model_json_schema()["properties"]
    assert props["money"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_MONEY,
        "title": "Money",
    }
    assert props["units"]["maximum"] == MAX_QUANTITY


@given(st.integers(0, MAX_MONEY), st.integers(0, MAX_QUANTITY))
def test_every_value_in_range_is_taken_from_json(money: int, units: int) -> None:
    parsed = Amounts.model_validate_json(f'{{"money": {money}, "units": {units}}}')
    assert (parsed.money, parsed.units) == (money, units)


@given(
    st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_MONEY + 1)),
)
def test_every_value_out_of_range_is_refused(money: int) -> None:
    with pytest.raises(ValidationError) as info:
        Amounts.model_validate_json(f'{{"money": {money}, "units": 1}}')
    assert [e["loc"] for e in info.value.errors()] == [("money",)]


@pytest.mark.parametrize("raw", ['"12"', "true", "false", "12.0", "12.5", "null", "[12]"])
def test_only_a_json_integer_is_a_number(raw: str) -> None:
    with pytest.raises(ValidationError):
        Amounts.model_validate_json(f'{{"money": {raw}, "units": 1}}')
    with pytest.raises(ValidationError):
        Amounts.model_validate({"money": 1, "units": _python(raw)})


def _python(raw: str) -> object:
    import json

    return json.loads(raw)


def test_a_tighter_bound_is_declared_once_on_top() -> None:
    class Line(BaseModel):
        price: Annotated[Money, Field(le=1000)]
        quantity: Annotated[Quantity, Field(gt=0)]

    props = Line.model_json_schema()["properties"]
    assert props["price"]["maximum"] == 1000
    assert props["quantity"]["exclusiveMinimum"] == 0
    with pytest.raises(ValidationError):
        Line(price=1001, quantity=1)
    with pytest.raises(ValidationError):
        Line(price=5, quantity=0)
