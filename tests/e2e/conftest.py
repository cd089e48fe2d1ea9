"""The shop in-process: a Node on embedded defaults under a temporary folder, served over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.status import command_side_status, projection_status
from shop.app import services


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """Returns a started Node running every role of every shop service."""
    running = Node(Settings.load(environ={}, data_dir=tmp_path / "data"), services())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """Returns an HTTP client of the shop's API."""
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        yield http


@pytest.fixture
async def observer(tmp_path: Path) -> AsyncIterator[Node]:
    """Returns a Node with no roles on the same data: it reads logs and checkpoints only."""
    node = Node(Settings.load(environ={}, data_dir=tmp_path / "data"), services(), roles=())
    yield node
    await node.stop()


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
