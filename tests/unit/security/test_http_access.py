"""Access over HTTP for a service with internal commands (memory backends, in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from tests.unit.security.conftest import TokenFactory
from tests.unit.security.notes import notes


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    memory = {"events_url": "memory://", "reads_url": "memory://", "transport_url": "memory://"}
    return Settings.load(environ={}, data_dir=tmp_path, **memory)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(settings, [notes], ROLES)
    await node.start()
    try:
        transport = httpx.ASGITransport(app=create_app(node, manage_node=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://notes") as http:
            yield http
    finally:
        await node.stop()


@pytest.mark.parametrize(
    ("who", "status"), [((), 401), (("bob", "user"), 403), (("root", "admin"), 403)]
)
async def test_internal_commands_are_refused_to_every_http_caller(
    client: httpx.AsyncClient, bearer: TokenFactory, who: tuple[str, ...], status: int
) -> None:
    headers = bearer(*who) if who else {}
    response = await client.post("/notes/commands/Archive", json={"note_id": "n"}, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_internal_commands_are_left_out_of_the_api_document(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/notes/commands/CreateNote" in paths
    assert "/notes/commands/Archive" not in paths


async def test_a_handler_without_a_policy_answers_403_even_to_an_admin(
    client: httpx.AsyncClient, bearer: TokenFactory
) -> None:
    response = await client.post(
        "/notes/commands/Unguarded", json={"note_id": "n"}, headers=bearer("root", "admin")
    )
    assert response.status_code == 403


async def test_an_idempotency_key_never_replays_another_callers_result(
    client: httpx.AsyncClient, bearer: TokenFactory
) -> None:
    alice, bob = bearer("alice", "user"), bearer("bob", "user")
    create = {"note_id": "n1", "owner": "alice"}
    await client.post("/notes/commands/CreateNote", json=create, headers=alice)
    path, edit, key = "/notes/commands/EditNote", {"note_id": "n1", "text": "hi"}, "k1"
    first = await client.post(path, json=edit, headers=alice | {"Idempotency-Key": key})
    again = await client.post(path, json=edit, headers=alice | {"Idempotency-Key": key})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    theirs = await client.post(path, json=edit, headers=bob | {"Idempotency-Key": key})
    assert theirs.status_code == 404
    assert "Idempotent-Replayed" not in theirs.headers
