"""Access-control tests: the shop served in-process over HTTP (ASGI), on embedded defaults
under a temporary dir, with credentials of every kind."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.apps import load_services
from bicameral.runtime.auth import embedded_key
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.tokens import issue_token


@dataclass
class Api:
    """An HTTP client of the running shop, and the node behind it."""

    client: httpx.AsyncClient
    node: Node

    async def heads(self) -> dict[str, int]:
        """Returns the head position of every service's event log."""
        return {name: await rt.events.head() for name, rt in self.node.runtimes.items()}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    node = Node(settings, load_services("shop.app:services"), ROLES)
    app = create_app(node, manage_node=False)
    await node.start()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            yield Api(client, node)
    finally:
        await node.stop()


CREDENTIALS = ("no token", "expired", "bad signature", "wrong audience")
Credentials = Callable[[str, str, tuple[str, ...]], dict[str, str]]


@pytest.fixture
def credentials(settings: Settings) -> Credentials:
    """Returns ``credentials(kind, subject, roles)``: the headers of one row of the matrix."""

    def make(kind: str, subject: str, roles: tuple[str, ...]) -> dict[str, str]:
        key = embedded_key(settings)
        if kind == "no token":
            return {}
        if kind == "expired":
            token = issue_token(
                key, subject=subject, roles=roles, ttl=timedelta(minutes=1), now=time.time() - 600
            )
        elif kind == "bad signature":
            token = issue_token(b"not-the-key-" * 4, subject=subject, roles=roles)
        elif kind == "wrong audience":
            token = issue_token(key, subject=subject, roles=roles, audience="another-api")
        else:
            token = issue_token(key, subject=subject, roles=roles)
        return {"Authorization": f"Bearer {token}"}

    return make
