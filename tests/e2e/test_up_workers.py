"""``bicameral up`` runs the worker roles in a child process it supervises (issue 14).

The API answers in ``up``'s own process; the projectors, relays and reactions of every service
run in one child, restarted when it dies and gone when ``up`` is gone, however it went.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, client_options


def children(pid: int) -> list[int]:
    """Returns the pids of the processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout}s")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def stock_after_receiving(http: httpx.Client, sku: str, quantity: int) -> int:
    """Receives ``quantity`` of ``sku``; returns its stock as a query awaiting the command's
    consistency token reads it."""
    sent = http.post("/inventory/commands/ReceiveStock", json={"sku": sku, "quantity": quantity})
    assert sent.status_code == 200, sent.text
    token = sent.headers["X-Consistency-Token"]
    got = http.get(
        "/inventory/queries/GetProduct", params={"sku": sku}, headers={"X-Consistency-Token": token}
    )
    assert got.status_code == 200, got.text
    return int(got.json()["on_hand"])


def test_the_workers_run_in_a_child_restarted_when_it_dies(shop: Server) -> None:
    assert shop.process is not None
    wait_until("one worker process", lambda: len(children(shop.process.pid)) == 1)
    [first] = children(shop.process.pid)
    with httpx.Client(**client_options(shop)) as http:
        product = {"sku": "w-1", "name": "widget", "price_cents": 100}
        assert http.post("/inventory/commands/RegisterProduct", json=product).status_code == 200
        assert stock_after_receiving(http, "w-1", 2) == 2
        os.kill(first, signal.SIGKILL)
        wait_until(
            "a new worker process",
            lambda: [p for p in children(shop.process.pid) if p != first and alive(p)],  # type: ignore[union-attr]
        )
        assert stock_after_receiving(http, "w-1", 3) == 5
        lags = [
            line
            for line in http.get("/metrics").text.splitlines()
            if line.startswith("bicameral_consumer_lag_seconds{")
        ]
        assert lags
        assert all('process="workers"' in line for line in lags)


def test_the_workers_stop_when_up_is_killed(shop: Server) -> None:
    assert shop.process is not None
    wait_until("one worker process", lambda: len(children(shop.process.pid)) == 1)
    [worker] = children(shop.process.pid)
    shop.kill()
    wait_until("the worker process gone", lambda: not alive(worker))
