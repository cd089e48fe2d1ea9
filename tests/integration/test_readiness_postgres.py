"""/health/ready tells the truth about PostgreSQL: 503 within 2 s of it going away, 200 after.

The server is made unreachable through a proxy this test owns; the shared server stays up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.testing import require_server
from shop.inventory.service import inventory
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def url() -> Iterator[str]:
    require_server("postgresql")
    from bicameral.testing.postgres import temporary_database

    with temporary_database("bicameral_ready") as made:
        yield made


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urlunsplit(parts._replace(netloc=netloc))


async def ready_status(client: httpx.AsyncClient) -> tuple[int, float, dict[str, str]]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    got = await client.get("/health/ready")
    took = loop.time() - began
    return got.status_code, took, got.json().get("down", {})


async def until_ready(client: httpx.AsyncClient) -> None:
    for _ in range(100):
        if (await client.get("/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("/health/ready did not answer 200 again")


async def test_ready_follows_postgres_going_away_and_coming_back(url: str, tmp_path: Path) -> None:
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = through(url, proxy)
    settings = Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url=proxied,
        reads_url=proxied,
        transport_url="memory://",
    )
    node = Node(settings, [inventory], ["command-api", "query-api"])
    await node.start()
    try:
        app = create_app(node, manage_node=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            assert (await client.get("/health/ready")).status_code == 200

            await proxy.cut()  # the server is gone: connections refused and dropped
            status, took, down = await ready_status(client)
            assert (status, sorted(down)) == (503, ["inventory.events", "inventory.reads"])
            assert took < 2.0
            assert (await client.get("/health")).status_code == 200  # still alive
            await proxy.restore()
            await until_ready(client)

            proxy.stall()  # the network swallows everything: no answer at all
            status, took, down = await ready_status(client)
            assert (status, sorted(down)) == (503, ["inventory.events", "inventory.reads"])
            assert took < 2.0
            await proxy.restore()
            await until_ready(client)
    finally:
        await node.stop()
        await proxy.close()
