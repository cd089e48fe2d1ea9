"""Waiting for the shop to settle: every worker caught up with every log."""

from __future__ import annotations

import asyncio

from bicameral.runtime.node import Node
from bicameral.runtime.status import command_side_status, projection_status


async def settle(node: Node, timeout: float = 60.0) -> None:
    """Returns once every relay, reaction runner and projector has caught up, twice running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    previous: list[tuple[str, str, int]] | None = None
    while loop.time() < deadline:
        rows = await projection_status(node) + await command_side_status(node)
        heads = [(r.service, r.name, r.head) for r in rows]
        if all(r.lag == 0 for r in rows):
            if heads == previous:
                return
            previous = heads
        else:
            previous = None
        await asyncio.sleep(0.2)
    raise AssertionError(f"the shop did not settle in {timeout}s: {rows}")
