"""``bicameral up`` killed with SIGKILL in the middle of the order flow, then started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

import bicameral
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from shop.app import services
from tests.e2e.api import FINAL, answer, ok, product
from tests.e2e.conftest import settle
from tests.e2e.folds import check_shop

SRC = str(Path(bicameral.__file__).resolve().parents[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Shop:
    """One ``bicameral up`` subprocess of the shop, on a data folder that outlives it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Starts the process and returns once it answers /health."""
        self.spawn()
        await self.healthy()

    def spawn(self) -> None:
        env = os.environ | {"PYTHONPATH": SRC}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bicameral.cli.main import main; main()",
                "up",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--app",
                "shop.app:services",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def healthy(self) -> None:
        assert self.process is not None
        async with httpx.AsyncClient(base_url=self.url) as http:
            for _ in range(150):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        return
                assert self.process.poll() is None, "bicameral up exited"
                await asyncio.sleep(0.1)
        raise AssertionError("bicameral up did not become healthy")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def shop_process(tmp_path: Path) -> Iterator[Shop]:
    running = Shop(tmp_path / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def observer(tmp_path: Path) -> AsyncIterator[Node]:
    """Returns a Node with no roles on the same data: it reads logs and checkpoints only."""
    node = Node(Settings.load(environ={}, data_dir=tmp_path / "data"), services(), roles=())
    yield node
    await node.stop()


async def _place(http: httpx.AsyncClient, order_id: str, customer: str, sku: str) -> bool:
    """Places an order with an Idempotency-Key; returns False when the server was unreachable."""
    body = {"order_id": order_id, "customer_id": customer, "lines": [{"sku": sku, "quantity": 1}]}
    try:
        response = await http.post(
            "/orders/commands/PlaceOrder", json=body, headers={"Idempotency-Key": order_id}
        )
    except httpx.TransportError:
        return False
    assert response.status_code == 200, response.text
    return True


async def test_the_order_flow_survives_sigkill_without_double_effects(
    shop_process: Shop, observer: Node
) -> None:
    await shop_process.start()
    customers = [f"k{n}" for n in range(12)]
    order_ids = [f"{c}-{k}" for c in customers for k in range(3)]
    async with httpx.AsyncClient(base_url=shop_process.url, timeout=10) as http:
        await product(http, "bolt", price=300, stock=20)
        await product(http, "nut", price=100, stock=8)
        for n, customer in enumerate(customers):
            await ok(
                http, "payments", "DepositFunds", customer_id=customer, amount_cents=250 * n + 50
            )
        sent: dict[str, bool] = {}
        halfway = asyncio.Event()

        async def place_all() -> None:
            for n, order_id in enumerate(order_ids):
                sent[order_id] = await _place(
                    http, order_id, order_id.split("-")[0], "bolt" if n % 2 else "nut"
                )
                if sum(sent.values()) >= len(order_ids) // 2:
                    halfway.set()

        placing = asyncio.create_task(place_all())
        await halfway.wait()
        shop_process.kill()
        await placing
    assert not all(sent.values()), "the kill should interrupt the flow"

    await shop_process.start()
    async with httpx.AsyncClient(base_url=shop_process.url, timeout=10) as http:
        for n, order_id in enumerate(order_ids):
            assert await _place(http, order_id, order_id.split("-")[0], "bolt" if n % 2 else "nut")
        for _ in range(300):
            statuses = [
                (await answer(http, "orders", "GetOrder", order_id=o))["status"] for o in order_ids
            ]
            if set(statuses) <= FINAL:
                break
            await asyncio.sleep(0.1)
        confirmed = [o for o, s in zip(order_ids, statuses, strict=True) if s == "CONFIRMED"]
        for order_id in confirmed[:3]:
            await ok(http, "orders", "CancelOrder", order_id=order_id)
        await observer.start()
        await settle(observer)
        outcomes = await check_shop(http, observer, order_ids)
    assert {("CONFIRMED", None), ("CANCELLED", None)} <= outcomes
