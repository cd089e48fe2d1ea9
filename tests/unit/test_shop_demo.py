"""The demo's plan: stock short of demand, and some orders bound to fail."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import pytest
from rich.console import Console

from shop.demo import RETRIES, Refused, Shop, Summary, _count, drive, plan


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


def shop_answering(
    answer: Callable[[httpx.Request], httpx.Response],
) -> tuple[Shop, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://shop")
    return Shop(http, 4, Summary()), seen


def busy(times: int, retry_after: str | None = "0") -> Callable[[httpx.Request], httpx.Response]:
    """Answers 503 (with ``Retry-After`` unless None) ``times`` times, then 200."""
    left = [times]

    def answer(request: httpx.Request) -> httpx.Response:
        if left[0] > 0:
            left[0] -= 1
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return httpx.Response(503, headers=headers, json={"detail": "busy"})
        return httpx.Response(200, json={"consistency_token": "t"})

    return answer


async def test_a_503_with_retry_after_is_sent_again_until_it_passes() -> None:
    shop, seen = shop_answering(busy(RETRIES))
    response = await shop.send("inventory", "RegisterProduct", {})
    assert response.status_code == 200
    assert len(seen) == RETRIES + 1
    assert (shop.summary.commands, shop.summary.retried) == (1, RETRIES)


async def test_a_503_is_sent_again_a_bounded_number_of_times_then_counted_failed() -> None:
    shop, seen = shop_answering(busy(RETRIES + 10))
    responses = _count(shop, [await shop.send("inventory", "RegisterProduct", {})])
    assert responses[0].status_code == 503
    assert len(seen) == RETRIES + 1
    assert shop.summary.failed == 1
    assert shop.summary.failures == {503: 1}


async def test_a_503_without_retry_after_is_not_sent_again() -> None:
    shop, seen = shop_answering(busy(1, retry_after=None))
    assert (await shop.send("inventory", "RegisterProduct", {})).status_code == 503
    assert len(seen) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_stops_the_run_at_the_first_answer(status: int) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": "the bearer token has expired"})

    shop, seen = shop_answering(refuse)
    output = io.StringIO()
    with pytest.raises(Refused) as info:
        await drive(shop.http, 40, 8, console=Console(file=output, width=100))
    message = str(info.value)
    assert "\n" not in message
    assert f"answered {status} to POST /inventory/commands/RegisterProduct" in message
    assert "the bearer token has expired" in message
    assert "--token" in message
    assert len(seen) <= 8  # those already in flight, and nothing after
    assert output.getvalue().strip() == ""  # no progress bars drawn as if done
    with pytest.raises(Refused):
        await shop.ask("inventory", "GetProduct", {"sku": "x"})


async def test_failures_are_counted_by_status_in_the_summary() -> None:
    answers = iter([409, 200, 422, 409])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={})

    shop, _ = shop_answering(answer)
    _count(shop, [await shop.send("orders", "PlaceOrder", {}) for _ in range(4)])
    assert (shop.summary.commands, shop.summary.failed) == (4, 3)
    output = io.StringIO()
    Console(file=output, width=100).print(shop.summary.table())
    assert "4 (3 failed)" in output.getvalue()
    assert "failed with 409" in output.getvalue()
