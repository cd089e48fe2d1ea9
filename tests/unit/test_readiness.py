"""Readiness: /health/ready answers 200 only while every backend this process uses answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from bicameral.errors import BackendError
from bicameral.http.app import create_app
from bicameral.ports import ReadStore
from bicameral.readstore.memory import MemoryReadStore
from bicameral.runtime.backends import BackendFactory
from bicameral.runtime.node import ROLES, Node
from shop.inventory.service import inventory
from tests.unit.test_node_projectors import memory_settings


class Switchable(MemoryReadStore):
    """A read store whose ping can be made to fail or to hang."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "up"

    async def ping(self) -> None:
        if self.mode == "down":
            raise BackendError("connection refused")
        if self.mode == "silent":
            await asyncio.Event().wait()


class WithSwitchable(BackendFactory):
    def __init__(self, reads: Switchable) -> None:
        super().__init__()
        self.reads = reads

    def read_store(self, url: str) -> ReadStore:
        made: ReadStore = self._once("reads", url, lambda: self.reads)
        return made


@pytest.fixture
def reads() -> Switchable:
    return Switchable()


@pytest.fixture
async def node(reads: Switchable) -> AsyncIterator[Node]:
    running = Node(memory_settings(), [inventory], ROLES, factory=WithSwitchable(reads))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_ready_when_every_backend_answers(client: httpx.AsyncClient) -> None:
    got = await client.get("/health/ready")
    assert got.status_code == 200
    assert got.json() == {"status": "ready"}


async def test_a_backend_down_makes_it_503_naming_it_while_liveness_stays_ok(
    client: httpx.AsyncClient, reads: Switchable
) -> None:
    reads.mode = "down"
    got = await client.get("/health/ready")
    assert got.status_code == 503
    assert got.headers["content-type"] == "application/problem+json"
    assert got.headers["Retry-After"] == "1"
    problem = got.json()
    assert problem["type"] == "urn:bicameral:problem:not-ready"
    assert problem["down"] == {"inventory.reads": "connection refused"}
    assert "inventory.reads" in problem["detail"]
    assert (await client.get("/health")).json() == {"status": "ok"}
    reads.mode = "up"
    assert (await client.get("/health/ready")).status_code == 200


async def test_a_backend_that_does_not_answer_in_time_is_down(
    node: Node, reads: Switchable
) -> None:
    reads.mode = "silent"
    assert await node.unready(timeout=0.05) == {"inventory.reads": "no answer within 0.05s"}


async def test_only_the_backends_of_the_process_roles_are_asked(reads: Switchable) -> None:
    reads.mode = "down"
    node = Node(memory_settings(), [inventory], ["command-api"], factory=WithSwitchable(reads))
    assert await node.unready() == {"node": "starting"}
    await node.start()
    try:
        assert await node.unready() == {}  # a command-api never reads the read store
    finally:
        await node.stop()
