"""The shop's demo load driver against the shop in-process: it runs, and every invariant holds."""

from __future__ import annotations

import io

import httpx
import pytest
from rich.console import Console

from shop.demo import drive, load
from tests.e2e.order_flow.processes import free_port


async def test_the_demo_drives_the_shop_and_finds_every_invariant_true(
    client: httpx.AsyncClient,
) -> None:
    output = io.StringIO()
    summary = await drive(client, 60, 8, console=Console(file=output, width=100))
    assert summary.ok, summary.invariants
    assert summary.failed == 0
    assert sum(summary.statuses.values()) == 60
    assert summary.statuses["CONFIRMED"] + summary.statuses["CANCELLED"] > 0
    assert summary.statuses["CANCELLED"] > 0
    Console(file=output, width=100).print(summary.table())
    assert "commands/s" in output.getvalue()


def test_the_demo_says_in_one_line_when_no_shop_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert load(f"http://127.0.0.1:{free_port()}", 3, 1) is False
    err = capsys.readouterr().err
    assert err.startswith("bicameral demo: error: cannot drive the shop at")
    assert err.count("\n") == 1
