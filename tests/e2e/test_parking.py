"""End to end: one bad stream parks, everything else goes on, ``bicameral dlq`` recovers it.

The app (tests/parking_app.py) fails for keys listed in a flag file; deleting the file is the
fix being deployed. Each role runs in its own OS process, on the embedded backends (SQLite
files and transport) and on PostgreSQL + Redis + NATS (tests/e2e/layouts.py):

- a projection failing for one account of fifty: 1,000 deposits through the bank's command
  API; two projector processes fold them, one is SIGKILLed between parking and retry;
- the shop with orders' ``confirm_paid`` reaction failing for one order: that order is not
  confirmed, and the DLQ (not a log line) says so, until ``dlq retry`` confirms it, once.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bicameral.projection import partition_checkpoints
from bicameral.runtime.auth import embedded_key
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.tokens import issue_token
from shop.orders.messages import order_key
from tests.e2e.cluster import ROOT, Cluster, free_port
from tests.e2e.layouts import Layout, create_stores, make_layout, observer, write_settings
from tests.parking_app import BROKEN_ENV, books

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PARTITIONS = 4
LEASE_TTL = 2.0
ACCOUNTS = 50
DEPOSITS = 1000
BAD = "a13"


def env_of(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BICAMERAL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env[BROKEN_ENV] = str(tmp_path / "broken")
    return env


def bicameral(
    cluster: Cluster, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs one ``bicameral`` command against the cluster's settings; returns how it ended."""
    return subprocess.run(
        [sys.executable, "-m", "bicameral.cli.main", *args, "--config", str(cluster.config)],
        capture_output=True,
        text=True,
        env=cluster.env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def parked(cluster: Cluster, *args: str) -> list[dict[str, Any]]:
    """Returns ``dlq list --json``."""
    done = bicameral(cluster, "dlq", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    found: list[dict[str, Any]] = orjson.loads(done.stdout)
    return found


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0]


def status_rows(cluster: Cluster) -> dict[str, list[str]]:
    """Returns ``bicameral status`` as rows by worker name (service, name, ..., parked, owner)."""
    done = bicameral(cluster, "status")
    assert done.returncode == 0, done.stderr
    header, *rows = [line.split() for line in done.stdout.splitlines()]
    assert header[-2:] == ["parked", "owner"]
    return {f"{row[0]} {row[1]}": row for row in rows}


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def admin_headers(settings: Settings) -> dict[str, str]:
    token = issue_token(embedded_key(settings), subject="e2e-admin", roles=["admin"])
    return {"Authorization": f"Bearer {token}"}


async def send(http: httpx.AsyncClient, gate: asyncio.Semaphore, path: str, body: Any) -> None:
    """Sends one command until it is applied (one Idempotency-Key for every try)."""
    key = str(uuid.uuid4())
    for _ in range(50):
        try:
            async with gate:
                got = await http.post(path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if got.status_code in (409, 503):
            await asyncio.sleep(0.05)
            continue
        assert got.status_code == 200, got.text
        return
    raise AssertionError(f"{path} {body} was never applied")


# --- a projection ----------------------------------------------------------------------------


@pytest.fixture
def bank(layout: Layout, tmp_path: Path) -> Iterator[tuple[Cluster, Settings, int]]:
    """The bank's command API and relay, and two ledger projectors, each its own process."""
    settings = write_settings(
        tmp_path / "bicameral.toml",
        layout,
        "tests.parking_app:services",
        partitions=PARTITIONS,
        lease_ttl=LEASE_TTL,
    )
    (tmp_path / "broken").write_text(f"account-{BAD}\n")
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env_of(tmp_path))
    admin_headers(settings)  # makes the signing key before the processes race to
    asyncio.run(create_stores(settings))
    try:
        port = free_port()
        cluster.serve("bank-api", "bank", "command-api", port)
        cluster.serve("bank-relay", "bank", "relay")
        cluster.serve("projector-1", "ledger", "projector")
        cluster.serve("projector-2", "ledger", "projector")
        cluster.wait_healthy(["bank-api"])
        yield cluster, settings, port
    finally:
        cluster.stop()
        print(cluster.logs())


async def folded(node: Node, head: int) -> bool:
    """Returns True once every partition of the ledger's projection has passed ``head``."""
    checkpoints = await node.runtime("ledger").reads.checkpoints()
    names = partition_checkpoints(books.checkpoint("bank"), PARTITIONS)
    return all(checkpoints.get(name, 0) >= head for name in names)


async def expected(node: Node) -> dict[str, dict[str, Any]]:
    """Returns the fold of the bank's log: each account's total and its versions, once each."""
    docs: dict[str, dict[str, Any]] = {}
    for env in await node.runtime("bank").events.read_all(0, 100_000):
        doc = docs.setdefault(env.subject, {"cents": 0, "versions": []})
        doc["cents"] += env.data["cents"]
        doc["versions"].append(env.stream_version)
    return docs


async def documents(node: Node) -> dict[str, dict[str, Any]]:
    return dict(await node.runtime("ledger").reads.all(books.table("accounts")))


async def test_one_failing_stream_parks_in_order_and_dlq_retry_folds_it_once(
    bank: tuple[Cluster, Settings, int], tmp_path: Path
) -> None:
    cluster, settings, port = bank
    rng = random.Random(7)
    deposits = [(f"a{i % ACCOUNTS}", rng.randint(1, 900)) for i in range(DEPOSITS)]
    node = await observer(settings)
    try:
        base = f"http://127.0.0.1:{port}"
        gate = asyncio.Semaphore(16)
        async with httpx.AsyncClient(
            base_url=base, headers=admin_headers(settings), timeout=30
        ) as http:
            await asyncio.gather(
                *(
                    send(http, gate, "/bank/commands/Deposit", {"account": a, "cents": c})
                    for a, c in deposits
                )
            )
        bank_log = await node.runtime("bank").events.read_all(0, 100_000)
        assert len(bank_log) == DEPOSITS
        bad = [e for e in bank_log if e.subject == f"account-{BAD}"]
        head = bank_log[-1].position

        async def parked_all() -> bool:
            found = await node.runtime("ledger").reads.parked()
            return await folded(node, head) and sum(len(s.events) for s in found) == len(bad)

        await until(parked_all, "the good streams folded and the bad one parked")
        good = {k: v for k, v in (await expected(node)).items() if k != f"account-{BAD}"}
        assert await documents(node) == good

        cluster.kill("projector-1")  # between parking and retry

        [seq] = parked(cluster)
        assert (seq["consumer"], seq["stream"]) == ("books.v1:bank", f"account-{BAD}")
        assert (seq["events"], seq["first_position"]) == (len(bad), bad[0].position)
        assert seq["error"] == "RuntimeError"
        shown = bicameral(cluster, "dlq", "show", seq["id"], "--json")
        assert shown.returncode == 0, shown.stderr
        events = orjson.loads(shown.stdout)["parked_events"]
        assert [e["position"] for e in events] == [e.position for e in bad]
        assert "books cannot fold" in orjson.loads(shown.stdout)["traceback"]
        assert status_rows(cluster)["ledger books.v1:bank"][-2] == str(len(bad))

        again = bicameral(cluster, "dlq", "retry", seq["id"])
        assert_one_line(again, 1, seq["id"], "RuntimeError", f"{len(bad)} event(s) still parked")
        assert parked(cluster)[0]["attempts"] == seq["attempts"] + 1

        (tmp_path / "broken").unlink()  # the fix is deployed
        done = bicameral(cluster, "dlq", "retry", seq["id"])
        assert done.returncode == 0, done.stderr
        assert f"{len(bad)} event(s) applied" in done.stdout
        assert parked(cluster) == []
        assert await documents(node) == await expected(node)

        # the stream is live again, folded by the projector that survived
        more = [(f"a{i}", 5) for i in (int(BAD[1:]), 0, 1, 2)]
        async with httpx.AsyncClient(
            base_url=base, headers=admin_headers(settings), timeout=30
        ) as http:
            await asyncio.gather(
                *(
                    send(http, gate, "/bank/commands/Deposit", {"account": a, "cents": c})
                    for a, c in more
                )
            )
        head = await node.runtime("bank").events.head()

        async def caught_up() -> bool:
            return await folded(node, head)

        await until(caught_up, "the surviving projector to fold the new deposits")
        assert parked(cluster) == []
        docs = await documents(node)
        assert docs == await expected(node)
        for doc in docs.values():  # nothing applied twice, nothing out of order
            assert doc["versions"] == list(range(1, len(doc["versions"]) + 1))
        assert status_rows(cluster)["ledger books.v1:bank"][-2] == "0"
    finally:
        await node.stop()


# --- a reaction ------------------------------------------------------------------------------


@pytest.fixture
def shop(layout: Layout, tmp_path: Path) -> Iterator[tuple[Cluster, Settings, int]]:
    """The shop in one ``bicameral up`` process, orders' confirm_paid broken for bob's o-bad."""
    settings = write_settings(
        tmp_path / "bicameral.toml", layout, "tests.parking_app:shop", partitions=2
    )
    (tmp_path / "broken").write_text(f"{order_key('bob', 'o-bad')}\n")
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env_of(tmp_path))
    admin_headers(settings)
    asyncio.run(create_stores(settings))
    try:
        port = free_port()
        cluster.up("shop", port)
        cluster.wait_healthy(["shop"])
        yield cluster, settings, port
    finally:
        cluster.stop()
        print(cluster.logs())


@pytest.fixture
async def shop_http(
    shop: tuple[Cluster, Settings, int],
) -> AsyncIterator[httpx.AsyncClient]:
    _, settings, port = shop
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=admin_headers(settings), timeout=30
    ) as http:
        yield http


async def order_status(node: Node, customer_id: str, order_id: str) -> str | None:
    from shop.orders.projections import orders

    key = order_key(customer_id, order_id)
    doc = await node.runtime("orders").reads.get(orders.table("orders"), key)
    return None if doc is None else str(doc["status"])


async def types_of(node: Node, service: str) -> Counter[tuple[str, str]]:
    events = await node.runtime(service).events.read_all(0, 100_000)
    return Counter((e.type, str(e.data.get("order_id"))) for e in events)


async def test_a_failing_reaction_parks_its_step_and_dlq_retry_completes_it_once(
    shop: tuple[Cluster, Settings, int], shop_http: httpx.AsyncClient, tmp_path: Path
) -> None:
    cluster, settings, _ = shop
    gate = asyncio.Semaphore(4)
    http = shop_http
    await send(
        http,
        gate,
        "/inventory/commands/RegisterProduct",
        {"sku": "pen", "name": "Pen", "price_cents": 100},
    )
    await send(http, gate, "/inventory/commands/ReceiveStock", {"sku": "pen", "quantity": 10})
    for customer in ("ann", "bob"):
        body = {"customer_id": customer, "amount_cents": 10_000}
        await send(http, gate, "/payments/commands/DepositFunds", body)
    for order_id, customer in (("o-good", "ann"), ("o-bad", "bob")):
        body = {
            "order_id": order_id,
            "customer_id": customer,
            "lines": [{"sku": "pen", "quantity": 2}],
        }
        await send(http, gate, "/orders/commands/PlaceOrder", body)
    node = await observer(settings)
    try:

        async def settled() -> bool:
            return (
                await order_status(node, "ann", "o-good") == "CONFIRMED"
                and len(await node.runtime("orders").reads.parked()) == 1
            )

        await until(settled, "o-good confirmed and o-bad's confirmation parked")
        assert await order_status(node, "bob", "o-bad") == "PENDING"
        [seq] = parked(cluster, "--consumer", "orders")
        assert seq["consumer"] == "orders.confirm_paid"
        assert seq["event_type"] == "payments.PaymentCaptured.v1"
        assert seq["error"] == "RuntimeError"
        assert order_key("bob", "o-bad") in seq["message"]
        assert status_rows(cluster)["orders reactions:payments"][-2] == "1"

        (tmp_path / "broken").unlink()
        done = bicameral(cluster, "dlq", "retry", "--all", "--consumer", "orders")
        assert done.returncode == 0, done.stderr

        async def confirmed() -> bool:
            return await order_status(node, "bob", "o-bad") == "CONFIRMED"

        await until(confirmed, "o-bad confirmed")
        assert parked(cluster) == []
        orders_log = await types_of(node, "orders")
        assert orders_log[("orders.OrderConfirmed.v1", "o-bad")] == 1
        await asyncio.sleep(1.0)  # let inventory react to the confirmation
        stock = await types_of(node, "inventory")
        assert stock[("inventory.StockSold.v1", "o-bad")] == 1
        assert stock[("inventory.StockSold.v1", "o-good")] == 1
        # retrying an already-settled event again changes nothing
        assert (await bicameral_async(cluster, "dlq", "retry", seq["id"])).returncode == 2
        assert (await types_of(node, "orders"))[("orders.OrderConfirmed.v1", "o-bad")] == 1
    finally:
        await node.stop()


async def bicameral_async(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(bicameral, cluster, *args)


# --- the command line's refusals --------------------------------------------------------------


def test_the_dlq_command_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    layout = make_layout("embedded", tmp_path)
    write_settings(tmp_path / "bicameral.toml", layout, "tests.parking_app:services")
    cluster = Cluster(tmp_path, tmp_path / "bicameral.toml", env_of(tmp_path))
    asyncio.run(create_stores(Settings.load(config=tmp_path / "bicameral.toml", environ={})))
    assert parked(cluster) == []
    assert_one_line(bicameral(cluster, "dlq", "retry", "nope"), 2, "nope")
    assert_one_line(bicameral(cluster, "dlq", "skip", "nope", "--reason", "x"), 2, "nope")
    assert_one_line(bicameral(cluster, "dlq", "show", "nope"), 2, "nope")
    assert_one_line(bicameral(cluster, "dlq", "skip", "nope"), 1, "--reason")
    assert_one_line(bicameral(cluster, "dlq", "retry"), 2, "--all")
    assert_one_line(bicameral(cluster, "dlq", "list", "--service", "nope"), 2, "nope")
    assert_one_line(bicameral(cluster, "dlq", "retry", "--all", "--service", "nope"), 2, "nope")
    assert parked(cluster, "--service", "", "--consumer", "") == []
    done = bicameral(cluster, "dlq", "retry", "--all")
    assert done.returncode == 0
    assert done.stdout.strip() == "nothing parked"
    skipped = bicameral(cluster, "dlq", "list", "--skipped", "--json")
    assert orjson.loads(skipped.stdout) == []
