"""Every service with its roles in their own processes; the saga processes SIGKILLed mid-flow.

Per service: one process serves the command and query APIs, one runs the projectors and the
relay, one runs the saga (its reactions). The services share nothing but the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bicameral.runtime.node import Node
from tests.e2e.conftest import admin_headers
from tests.e2e.order_flow.api import FINAL, answer, command, ok, order, product
from tests.e2e.order_flow.folds import check_shop
from tests.e2e.order_flow.processes import Process, Router, free_port
from tests.e2e.order_flow.settling import settle

SERVICES = ("inventory", "orders", "payments")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, Process]]:
    data = tmp_path / "data"
    found: dict[str, Process] = {}
    for name in SERVICES:
        serve = ("serve", "--service", name)
        api = (*serve, "--role", "command-api", "--role", "query-api")
        found[f"{name}-api"] = Process(data, *api, port=free_port())
        found[f"{name}-log"] = Process(data, *serve, "--role", "projector", "--role", "relay")
        found[f"{name}-saga"] = Process(data, *serve, "--role", "saga")
    try:
        yield found
    finally:
        for process in found.values():
            process.stop()


async def test_the_order_flow_survives_its_saga_processes_being_killed(
    processes: dict[str, Process], observer: Node
) -> None:
    await asyncio.gather(*(p.start() for p in processes.values()))
    ports = {name: processes[f"{name}-api"].port or 0 for name in SERVICES}
    headers = admin_headers(processes["orders-api"].data_dir)
    async with httpx.AsyncClient(
        transport=Router(ports), base_url="http://shop", headers=headers
    ) as http:
        await product(http, "bolt", price=300, stock=12)
        await product(http, "nut", price=100, stock=6)
        for n in range(10):
            await ok(
                http, "payments", "DepositFunds", customer_id=f"c{n}", amount_cents=400 * n + 100
            )
        order_ids = [f"c{n}-{k}" for n in range(10) for k in range(3)]
        placing = [
            order(http, o, o.split("-")[0], **({"bolt": 2} if i % 2 else {"nut": 1, "bolt": 1}))
            for i, o in enumerate(order_ids)
        ]
        await asyncio.gather(*placing[:15])
        for name in ("inventory", "orders", "payments"):
            processes[f"{name}-saga"].kill()
        await asyncio.gather(*placing[15:])
        await asyncio.gather(*(processes[f"{n}-saga"].start() for n in SERVICES))

        for _ in range(300):
            got = [await answer(http, "orders", "GetOrder", order_id=o) for o in order_ids]
            if {doc["status"] for doc in got} <= FINAL:
                break
            await asyncio.sleep(0.1)
        confirmed = [doc["order_id"] for doc in got if doc["status"] == "CONFIRMED"]
        assert len(confirmed) >= 2
        for order_id in confirmed[::2]:
            await ok(http, "orders", "CancelOrder", order_id=order_id)
        refused = await command(http, "orders", "CancelOrder", order_id=confirmed[0])
        assert refused.status_code == 409
        await observer.start()
        await settle(observer)
        outcomes = await check_shop(http, observer, order_ids)
    assert {("CONFIRMED", None), ("CANCELLED", None)} <= outcomes
    assert any(status == "REJECTED" for status, _ in outcomes)
