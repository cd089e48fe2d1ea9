"""``bicameral demo load``: many customers using a running shop over HTTP, then its invariants.

Registers products with scarce stock, deposits money (not always enough), places orders at once
(some for more than is in stock, some for a product that does not exist), cancels some confirmed
ones, waits for the read models to settle, and prints a summary. Only the shop's HTTP API is used.

A 503 that carries ``Retry-After`` is sent again, at most ``RETRIES`` times; every other answer
that is not a 200 counts as failed, by status. A 401 or 403 ends the run at once, with one line
that says why (a token the shop does not take refuses every request alike).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["RETRIES", "Plan", "Refused", "Summary", "drive", "load", "plan"]

RETRIES = 5
"""How many times one request is sent again after a 503 with ``Retry-After``."""
MAX_WAIT = 5.0
"""The longest wait before sending again, whatever ``Retry-After`` asks."""
FINAL = frozenset({"CONFIRMED", "REJECTED", "CANCELLED"})
Line = dict[str, Any]
Statuses = dict[str, tuple[str, str | None]]


@dataclass
class Plan:
    """What one demo run sends: products (price, stock), deposits, orders and what to cancel."""

    products: dict[str, tuple[int, int]]
    deposits: dict[str, int]
    orders: dict[str, tuple[str, list[Line]]]
    cancel_share: float = 0.15


def plan(orders: int, *, seed: int | None = None, run: str | None = None) -> Plan:
    """Returns a run's plan: stock short of demand, deposits short of some orders."""
    rng = random.Random(seed)
    run = run or uuid.uuid4().hex[:6]
    skus = [f"demo-{run}-p{n}" for n in range(max(3, orders // 25))]
    customers = [f"demo-{run}-c{n}" for n in range(max(3, orders // 4))]
    stock_each = max(2, 3 * orders // len(skus))
    products = {
        sku: (rng.randrange(200, 3000, 50), rng.randint(max(1, stock_each // 3), stock_each))
        for sku in skus
    }
    deposits = {c: rng.choice([1000, 5000, 15000, 40000]) for c in customers}
    placed: dict[str, tuple[str, list[Line]]] = {}
    for n in range(orders):
        chosen = rng.sample(skus, rng.randint(1, 2))
        lines: list[Line] = [{"sku": s, "quantity": rng.randint(1, 3)} for s in chosen]
        if rng.random() < 0.05:
            lines.append({"sku": f"demo-{run}-unknown", "quantity": 1})
        placed[f"demo-{run}-o{n}"] = (rng.choice(customers), lines)
    return Plan(products, deposits, placed)


@dataclass
class Summary:
    """What a run did and found."""

    commands: int = 0
    failed: int = 0
    retried: int = 0
    failures: Counter[int] = field(default_factory=Counter)
    sending_seconds: float = 0.0
    final_seconds: float = 0.0
    settle_seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    invariants: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Returns True when every invariant held and no command failed unexpectedly."""
        return self.failed == 0 and all(self.invariants.values())

    def table(self) -> Table:
        """Returns the summary as a table."""
        table = Table(title="bicameral demo: shop load", show_header=False)
        rate = self.commands / self.sending_seconds if self.sending_seconds else 0.0
        table.add_row("commands", f"{self.commands} ({self.failed} failed)")
        for code, times in sorted(self.failures.items()):
            table.add_row(f"failed with {code}", str(times))
        table.add_row("sent again after 503", str(self.retried))
        table.add_row("commands/s", f"{rate:.1f}")
        table.add_row("orders final after", f"{self.final_seconds:.2f} s")
        table.add_row("read models settled after", f"{self.settle_seconds:.2f} s")
        for status, count in sorted(self.statuses.items()):
            table.add_row(f"orders {status}", str(count))
        for name, held in self.invariants.items():
            table.add_row(name, "[green]holds[/]" if held else "[red]BROKEN[/]")
        return table


class Refused(Exception):
    """The shop refused the demo's credentials (401 or 403): nothing more is sent."""


def _refusal(response: httpx.Response) -> Refused:
    try:
        detail = str(response.json().get("detail") or response.reason_phrase)
    except ValueError:
        detail = response.reason_phrase
    request = response.request
    return Refused(
        f"the shop at {request.url.scheme}://{request.url.netloc.decode()} answered "
        f"{response.status_code} to {request.method} {request.url.path} ({detail}): "
        "pass an admin's token with --token, or the server's data dir with --data-dir"
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Returns the seconds a 503 asks to wait before sending again, or None."""
    if response.status_code != 503:
        return None
    try:
        return min(MAX_WAIT, max(0.0, float(response.headers["retry-after"])))
    except (KeyError, ValueError):
        return None


class Shop:
    """The shop's HTTP API, with a bound on requests in flight; counts every command."""

    def __init__(self, http: httpx.AsyncClient, concurrency: int, summary: Summary) -> None:
        self.http = http
        self.concurrency = concurrency
        self.gate = asyncio.Semaphore(concurrency)
        self.summary = summary
        self.refused: Refused | None = None

    async def _request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Returns the answer, after sending again on a 503 with ``Retry-After`` (at most
        ``RETRIES`` times); raises Refused on a 401 or 403, and for every later request."""
        for attempt in range(RETRIES + 1):
            if self.refused is not None:
                raise self.refused
            async with self.gate:
                response = await self.http.request(method, url, **options)
            if response.status_code in (401, 403):
                self.refused = _refusal(response)
                raise self.refused
            wait = _retry_after(response)
            if wait is None or attempt == RETRIES:
                return response
            self.summary.retried += 1
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, service: str, name: str, body: dict[str, Any]) -> httpx.Response:
        """Returns the response to one command."""
        response = await self._request("POST", f"/{service}/commands/{name}", json=body)
        self.summary.commands += 1
        return response

    async def ask(
        self, service: str, name: str, params: dict[str, Any], token: str | None = None
    ) -> Any:
        """Returns the answer to one query (after ``token``'s commands if given)."""
        headers = {"X-Consistency-Token": token} if token else {}
        response = await self._request(
            "GET", f"/{service}/queries/{name}", params=params, headers=headers
        )
        response.raise_for_status()
        return response.json()


async def drive(
    http: httpx.AsyncClient, orders: int, concurrency: int, *, console: Console
) -> Summary:
    """Runs the demo against the shop ``http`` talks to and returns its summary."""
    the_plan = plan(orders)
    summary = Summary()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    shop = Shop(http, concurrency, summary)
    progress = Progress(*columns, TimeElapsedColumn(), console=console)
    with progress:
        try:
            await _run(shop, the_plan, summary, progress)
        except Refused:
            progress.live.transient = True  # no bars left drawn as if the work were done
            raise
    return summary


async def _run(shop: Shop, the_plan: Plan, summary: Summary, progress: Progress) -> None:
    started = time.perf_counter()
    tokens = await _send_all(shop, the_plan, progress)
    summary.sending_seconds = time.perf_counter() - started
    waited = time.perf_counter()
    statuses = await _until_final(shop, tokens, progress)
    summary.final_seconds = time.perf_counter() - waited
    started = time.perf_counter()
    expected = await _cancel_some(shop, the_plan, statuses, progress)
    summary.sending_seconds += time.perf_counter() - started
    waited = time.perf_counter()
    await _until_settled(shop, the_plan, tokens, expected, summary, progress)
    summary.settle_seconds = time.perf_counter() - waited
    statuses = await _statuses(shop, tokens, list(tokens))
    summary.invariants = {
        "every order final": all(s in FINAL for s, _ in statuses.values()),
        "order statuses as expected": statuses == expected,
        **summary.invariants,
    }
    summary.statuses = Counter(
        s if s != "REJECTED" else f"REJECTED {r}" for s, r in statuses.values()
    )


async def _gather(progress: Progress, description: str, jobs: list[Any]) -> list[Any]:
    task = progress.add_task(description, total=len(jobs))

    async def one(job: Any) -> Any:
        result = await job
        progress.advance(task)
        return result

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def _send_all(shop: Shop, the_plan: Plan, progress: Progress) -> dict[str, str]:
    setup = [
        shop.send("inventory", "RegisterProduct", {"sku": s, "name": f"Item {s}", "price_cents": p})
        for s, (p, _) in the_plan.products.items()
    ]
    _count(shop, await _gather(progress, "catalogue", setup))
    stock = [
        shop.send("inventory", "ReceiveStock", {"sku": s, "quantity": q})
        for s, (_, q) in the_plan.products.items()
    ]
    stock += [
        shop.send("payments", "DepositFunds", {"customer_id": c, "amount_cents": a})
        for c, a in the_plan.deposits.items()
    ]
    _count(shop, await _gather(progress, "stock and deposits", stock))
    placing = [
        shop.send("orders", "PlaceOrder", {"order_id": o, "customer_id": c, "lines": lines})
        for o, (c, lines) in the_plan.orders.items()
    ]
    responses = _count(shop, await _gather(progress, "orders", placing))
    return {
        o: r.json()["consistency_token"]
        for o, r in zip(the_plan.orders, responses, strict=True)
        if r.status_code == 200
    }


def _count(shop: Shop, responses: list[httpx.Response]) -> list[httpx.Response]:
    failed = [r.status_code for r in responses if r.status_code != 200]
    shop.summary.failed += len(failed)
    shop.summary.failures.update(failed)
    return responses


async def _statuses(shop: Shop, tokens: dict[str, str], order_ids: list[str]) -> Statuses:
    async def one(order_id: str) -> tuple[str, str | None]:
        doc = await shop.ask("orders", "GetOrder", {"order_id": order_id}, tokens[order_id])
        return doc["status"], doc["reason"]

    found = await asyncio.gather(*(one(o) for o in order_ids))
    return dict(zip(order_ids, found, strict=True))


async def _until_final(
    shop: Shop, tokens: dict[str, str], progress: Progress, timeout: float = 300.0
) -> Statuses:
    """Returns every order's status once all are final (or at ``timeout``).

    Asks oldest first, a chunk at a time, and ends a round at the first chunk still pending,
    so that polling leaves the shop's workers the CPU.
    """
    task = progress.add_task("orders decided", total=len(tokens))
    deadline = time.perf_counter() + timeout
    statuses: Statuses = dict.fromkeys(tokens, ("PENDING", None))
    chunk = max(8, shop.concurrency)
    while True:
        pending = [o for o, (s, _) in statuses.items() if s not in FINAL]
        for start in range(0, len(pending), chunk):
            found = await _statuses(shop, tokens, pending[start : start + chunk])
            statuses |= found
            if any(s not in FINAL for s, _ in found.values()):
                break
        final = sum(s in FINAL for s, _ in statuses.values())
        progress.update(task, completed=final)
        if final == len(tokens) or time.perf_counter() > deadline:
            return statuses
        await asyncio.sleep(0.2)


async def _cancel_some(
    shop: Shop, the_plan: Plan, statuses: Statuses, progress: Progress
) -> Statuses:
    confirmed = [o for o, (s, _) in statuses.items() if s == "CONFIRMED"]
    chosen = confirmed[:: max(1, round(1 / the_plan.cancel_share))]
    jobs = [
        shop.send("orders", "CancelOrder", {"order_id": o, "customer_id": the_plan.orders[o][0]})
        for o in chosen
    ]
    responses = _count(shop, await _gather(progress, "cancellations", jobs))
    cancelled = {
        o: ("CANCELLED", None) for o, r in zip(chosen, responses, strict=True) if r.is_success
    }
    return statuses | cancelled


async def _until_settled(
    shop: Shop,
    the_plan: Plan,
    tokens: dict[str, str],
    expected: Statuses,
    summary: Summary,
    progress: Progress,
    timeout: float = 300.0,
) -> None:
    task = progress.add_task("settling", total=None)
    kept = [o for o, (s, _) in expected.items() if s == "CONFIRMED"]
    docs = await asyncio.gather(
        *(shop.ask("orders", "GetOrder", {"order_id": o}, tokens[o]) for o in kept)
    )
    deadline = time.perf_counter() + timeout
    while True:
        summary.invariants = await _invariants(shop, the_plan, docs)
        if all(summary.invariants.values()) or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.2)
    progress.update(task, total=1, completed=1)


async def _invariants(shop: Shop, the_plan: Plan, kept: list[Any]) -> dict[str, bool]:
    skus, customers = list(the_plan.products), list(the_plan.deposits)
    found = await asyncio.gather(
        *(shop.ask("inventory", "GetProduct", {"sku": sku}) for sku in skus),
        *(shop.ask("payments", "GetBalance", {"customer_id": c}) for c in customers),
    )
    products = dict(zip(skus, found[: len(skus)], strict=True))
    balances = [b["balance_cents"] for b in found[len(skus) :]]
    sold = Counter[str]()
    for doc in kept:
        for line in doc["lines"]:
            sold[line["sku"]] += line["quantity"]
    paid = sum(doc["total_cents"] for doc in kept)
    return {
        "available = on_hand - reserved >= 0": all(
            p["available"] == p["on_hand"] - p["reserved"] >= 0 for p in products.values()
        ),
        "nothing reserved once settled": all(p["reserved"] == 0 for p in products.values()),
        "on_hand = received - sold (+ returned)": all(
            p["on_hand"] == the_plan.products[sku][1] - sold[sku] for sku, p in products.items()
        ),
        "balances + captured - refunded = deposits": (
            sum(balances) + paid == sum(the_plan.deposits.values())
        ),
        "no balance below zero": all(b >= 0 for b in balances),
    }


def load(url: str, orders: int, concurrency: int, token: str = "") -> bool:
    """Runs the demo against the shop at ``url`` as the bearer of ``token`` (an admin's),
    prints its summary; True if it all held."""
    console = Console()
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def run() -> Summary:
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
            (await http.get("/health")).raise_for_status()
            return await drive(http, orders, concurrency, console=console)

    try:
        summary = asyncio.run(run())
    except Refused as exc:
        _error(str(exc))
        return False
    except httpx.HTTPError as exc:
        _error(f"cannot drive the shop at {url}: {exc}")
        return False
    console.print(summary.table())
    return summary.ok


def _error(message: str) -> None:
    line = f"bicameral demo: error: {message}"
    Console(stderr=True).print(line, soft_wrap=True, highlight=False, markup=False)
