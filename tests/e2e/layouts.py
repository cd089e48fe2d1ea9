"""Where the processes of a multi-process end-to-end test keep their data.

``embedded``: SQLite files under one data dir shared by the processes, the SQLite transport.
``servers``: one PostgreSQL database per service for its log, read models in Redis (or in a
PostgreSQL database of their own for the services named), NATS JetStream between services.
Every servers run uses names unique to it (databases, key prefixes, stream prefixes) and
drops them in its cleanup.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bicameral.runtime.apps import load_services
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.testing.servers import require_server

LAYOUTS = ("embedded", "servers")
DRIVERS = {"asyncpg": "postgres", "redis": "redis", "nats": "nats"}
"""The server drivers the servers layout needs: module -> bicameral's extra installing it."""
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"


@dataclass
class Layout:
    """Where one run keeps its data: settings for the processes, and how to clean up."""

    name: str
    toml: str
    cleanup: Callable[[], None] = lambda: None


def embedded_layout(home: Path) -> Layout:
    """Returns SQLite files under ``home``/data for every store, and the SQLite transport."""
    return Layout("embedded", f'data_dir = "{home / "data"}"\n')


def servers_layout(home: Path, postgres_reads: Iterable[str] = ()) -> Layout:
    """Returns PostgreSQL logs, Redis read models (PostgreSQL ones for ``postgres_reads``) and
    NATS; fails in CI (``CI=true``), skips elsewhere, when a server or its driver is missing."""
    for name in ("postgresql", "redis", "nats"):
        require_server(name)
    missing = [
        extra for module, extra in DRIVERS.items() if importlib.util.find_spec(module) is None
    ]
    if missing:
        extras = ",".join(missing)
        message = f"server drivers are missing; install them: pip install 'bicameral[{extras}]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    run = uuid.uuid4().hex[:10]
    toml = (
        f'data_dir = "{home / "data"}"\n'
        f'transport_url = "{NATS}?prefix=e2e{run}"\n'
        "[defaults]\n"
        f'events_url = "{POSTGRES}/bicameral_e2e_{run}_{{service}}?create_database=true"\n'
        f'reads_url = "{REDIS}?prefix=e2e_{run}_{{service}}"\n'
    )
    for service in postgres_reads:
        toml += (
            f"[services.{service}]\n"
            f'reads_url = "{POSTGRES}/bicameral_e2e_{run}_{service}_reads?create_database=true"\n'
        )
    return Layout("servers", toml, lambda: asyncio.run(drop_server_data(run)))


def make_layout(name: str, home: Path, postgres_reads: Iterable[str] = ()) -> Layout:
    """Returns the layout called ``name`` (one of ``LAYOUTS``) for a run under ``home``."""
    if name == "embedded":
        return embedded_layout(home)
    return servers_layout(home, postgres_reads)


async def drop_server_data(run: str) -> None:
    """Drops the run's PostgreSQL databases, Redis keys and NATS streams."""
    import asyncpg
    import nats
    import redis.asyncio as aioredis

    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        names = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"bicameral_e2e_{run}_%"
        )
        for row in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await conn.close()
    client = aioredis.from_url(REDIS)
    try:
        doomed = [key async for key in client.scan_iter(match=f"e2e_{run}_*")]
        if doomed:
            await client.delete(*doomed)
    finally:
        await client.aclose()
    nc = await nats.connect(NATS)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if (info.config.name or "").startswith(f"E2E{run.upper()}_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


def write_settings(config: Path, layout: Layout, app: str, **options: object) -> Settings:
    """Writes ``config`` (the app, top-level ``options``, then the layout) and returns it loaded."""
    top = "".join(f"{key} = {value!r}\n" for key, value in options.items())
    config.write_text(f'app = "{app}"\n{top}{layout.toml}')
    return Settings.load(config=config, environ={})


async def create_stores(settings: Settings) -> None:
    """Creates every store before the processes start (SQLite files refuse a crowd at birth)."""
    node = Node(settings, load_services(settings.app), roles=())
    for backend in node.factory.started():
        await backend.start()
    await node.stop()


async def observer(settings: Settings) -> Node:
    """Returns a Node of the app on the same backends running no role: a test's view of them."""
    node = Node(settings, load_services(settings.app), roles=())
    for backend in node.factory.started():
        await backend.start()
    return node
