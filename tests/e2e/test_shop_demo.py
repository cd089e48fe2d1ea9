"""The shop's demo load driver against the shop in-process: it runs, and every invariant holds."""

from __future__ import annotations

import io

import httpx
from rich.console import Console

from shop.demo import drive


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
