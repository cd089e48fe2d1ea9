"""The demo's plan: stock short of demand, and some orders bound to fail."""

from __future__ import annotations

from shop.demo import plan


def test_a_plan_is_repeatable_with_a_seed() -> None:
    assert plan(50, seed=3, run="r") == plan(50, seed=3, run="r")


def test_a_plan_asks_for_more_than_is_in_stock_and_names_an_unknown_product() -> None:
    the_plan = plan(200, seed=1, run="r")
    demand = sum(line["quantity"] for _, lines in the_plan.orders.values() for line in lines)
    assert demand > sum(stock for _, stock in the_plan.products.values())
    skus = {line["sku"] for _, lines in the_plan.orders.values() for line in lines}
    assert skus - set(the_plan.products) == {"demo-r-unknown"}
    assert len(the_plan.orders) == 200
    assert min(the_plan.deposits.values()) < max(p for p, _ in the_plan.products.values()) * 3


def test_even_a_tiny_plan_stocks_every_product() -> None:
    for seed in range(50):
        assert all(stock > 0 for _, stock in plan(1, seed=seed).products.values())
