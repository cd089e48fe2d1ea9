"""The console's rebuilds page over SQLite files: a rebuild under way, with its progress,
seen by a query-api process (no projector runs to finish it)."""

from __future__ import annotations

from pathlib import Path

import httpx

from bicameral.http.app import create_app
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from bicameral.versions import start_rebuild
from tests.parking_app import books, services

PAGE = {"Accept": "text/html"}


async def test_a_rebuild_under_way_shows_its_progress(tmp_path: Path) -> None:
    """With no projector running, a started rebuild stays building, as the page shows."""
    settings = Settings.load(environ={}, data_dir=tmp_path)  # SQLite files, shared
    quiet = Node(settings, services(), ["query-api"])
    await quiet.start()
    try:
        version, started = await start_rebuild(quiet.runtime("ledger").reads, books)
        assert started
        app = create_app(quiet, manage_node=False)
        token = issue_token(embedded_secret(tmp_path), subject="ops", roles=["admin"])
        auth = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as c:
            page = await c.get("/console/rebuilds", headers=PAGE)
        assert page.status_code == 200
        assert f"v{version.number} (live: v1)" in page.text
        assert "<progress" in page.text
        assert 'data-building="1"' in page.text
    finally:
        await quiet.stop()
