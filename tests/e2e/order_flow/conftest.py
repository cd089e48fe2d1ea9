"""The shop in-process for the order-flow tests: a Node on embedded defaults, served over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from shop.app import services
from tests.e2e.conftest import admin_headers


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
    """Returns an HTTP client of the shop's API, acting as an admin (who may do everything)."""
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    headers = admin_headers(node.settings.data_dir)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://shop", headers=headers
    ) as http:
        yield http


@pytest.fixture
async def observer(tmp_path: Path) -> AsyncIterator[Node]:
    """Returns a Node with no roles on the same data: it reads logs and checkpoints only."""
    node = Node(Settings.load(environ={}, data_dir=tmp_path / "data"), services(), roles=())
    yield node
    await node.stop()
