"""Console sign-in across processes: two query-api nodes sharing a read store (SQLite file,
PostgreSQL, Redis) share sign-in links and sessions, so a link works once whichever copy
opens it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.console import sign_in_link
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from tests.integration.test_postgres_readstore import url
from tests.integration.test_redis_readstore import URL as REDIS
from tests.integration.test_redis_readstore import prefix
from tests.parking_app import services

__all__ = ["prefix", "url"]  # fixtures: a Redis key prefix, a PostgreSQL database; cleaned up

PAGE = {"Accept": "text/html"}


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def reads_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///{data_dir}/{service}/reads.db"
    if request.param == "postgres":
        return str(request.getfixturevalue("url"))
    return f"{REDIS}?prefix={request.getfixturevalue('prefix')}"


@pytest.fixture
async def copies(tmp_path: Path, reads_url: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Returns clients of two query-api copies of the same services, each its own node."""
    embedded_secret(tmp_path)
    settings = Settings.load(environ={}, data_dir=tmp_path, reads_url=reads_url)
    nodes = [Node(settings, services(), ["query-api"]) for _ in range(2)]
    clients = []
    for node in nodes:
        await node.start()
        app = create_app(node, manage_node=False)
        clients.append(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        )
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        for node in nodes:
            await node.stop()


async def test_a_link_works_once_across_copies_and_sessions_are_shared(
    copies: list[httpx.AsyncClient], tmp_path: Path
) -> None:
    first, second = copies
    settings = Settings.load(environ={}, data_dir=tmp_path)
    url = urlsplit(sign_in_link(settings, "http://t", "ops"))
    link = f"{url.path}?{url.query}"
    opened = await first.get(link)
    assert opened.status_code == 303
    assert (await second.get(link)).status_code == 401
    second.cookies.update(first.cookies)
    page = await second.get("/console", headers=PAGE)
    assert page.status_code == 200
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"content-type": "application/x-www-form-urlencoded"}
    out = await second.post("/console/sign-out", headers=form, content=f"csrf={csrf}")
    assert out.status_code == 303
    assert (await first.get("/console/session")).status_code == 401
