"""``/admin/dlq``: parked sequences listed, shown, retried and skipped over HTTP, admin only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from tests.parking_app import BROKEN_ENV, books, services

BAD = "account-bad"


@pytest.fixture
def flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The flag file: account ``bad`` is broken until the test deletes it."""
    path = tmp_path / "broken"
    path.write_text(BAD)
    monkeypatch.setenv(BROKEN_ENV, str(path))
    return path


@pytest.fixture
async def node(tmp_path: Path, flag: Path) -> AsyncIterator[Node]:
    settings = Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
        partitions=2,
    )
    node = Node(settings, services(), ROLES)
    await node.start()
    yield node
    await node.stop()


def headers(tmp_path: Path, roles: list[str], subject: str = "ops") -> dict[str, str]:
    token = issue_token(embedded_secret(tmp_path), subject=subject, roles=roles)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(node: Node, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    admin = headers(tmp_path, ["admin"])
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=admin) as c:
        yield c


async def deposit(client: httpx.AsyncClient, account: str, cents: int) -> None:
    done = await client.post("/bank/commands/Deposit", json={"account": account, "cents": cents})
    assert done.status_code == 200, done.text


async def settled(node: Node, parked: int) -> list[dict[str, Any]]:
    """Waits until the ledger has folded the bank's log and ``parked`` events wait."""
    reads = node.runtime("ledger").reads
    head = await node.runtime("bank").events.head()
    for _ in range(500):
        found = await reads.parked()
        checkpoints = await reads.checkpoints()
        folded = [
            p for n, p in checkpoints.items() if n.startswith(books.checkpoint("bank") + "#p")
        ]
        if sum(len(s.events) for s in found) == parked and folded and min(folded) >= head:
            return [s.summary() for s in found]
        await asyncio.sleep(0.02)
    raise AssertionError("the ledger did not settle")


async def documents(node: Node) -> dict[str, Any]:
    return dict(await node.runtime("ledger").reads.all(books.table("accounts")))


async def parked_one(client: httpx.AsyncClient, node: Node) -> dict[str, Any]:
    for cents in (1, 2, 3):
        await deposit(client, "ok", cents)
        await deposit(client, "bad", cents)
    [seq] = await settled(node, 3)
    return seq


async def test_only_an_admin_sees_the_dlq(client: httpx.AsyncClient, tmp_path: Path) -> None:
    assert (await client.get("/admin/dlq")).json() == []
    anonymous = await client.get("/admin/dlq", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    customer = headers(tmp_path, ["customer"])
    for method, path in [
        ("GET", "/admin/dlq"),
        ("GET", "/admin/dlq/x"),
        ("POST", "/admin/dlq/x/retry"),
        ("POST", "/admin/dlq/x/skip"),
    ]:
        refused = await client.request(method, path, headers=customer, json={"reason": "r"})
        assert refused.status_code == 403, (method, path)
        assert refused.headers["content-type"] == "application/problem+json"


async def test_a_parked_sequence_is_listed_and_shown(client: httpx.AsyncClient, node: Node) -> None:
    seq = await parked_one(client, node)
    assert seq["consumer"] == "books.v1:bank"
    assert seq["stream"] == BAD
    assert seq["events"] == 3
    assert seq["error"] == "RuntimeError"
    assert seq["attempts"] == 4
    listed = (await client.get("/admin/dlq", params={"consumer": "books"})).json()
    assert [s["id"] for s in listed] == [seq["id"]]
    assert (await client.get("/admin/dlq", params={"service": "bank"})).json() == []
    shown = (await client.get(f"/admin/dlq/{seq['id']}")).json()
    assert [e["data"]["cents"] for e in shown["parked_events"]] == [1, 2, 3]
    assert shown["parked_events"][0]["subject"] == BAD
    assert "books cannot fold account-bad" in shown["traceback"]
    missing = await client.get("/admin/dlq/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await client.post("/admin/dlq/nope/retry")).status_code == 404
    assert (await client.post("/admin/dlq/nope/skip", json={"reason": "x"})).status_code == 404


async def test_a_retry_fails_again_until_the_fix_then_folds_once(
    client: httpx.AsyncClient, node: Node, flag: Path
) -> None:
    seq = await parked_one(client, node)
    again = await client.post(f"/admin/dlq/{seq['id']}/retry")
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    body = again.json()
    assert (body["applied"], body["left"], body["done"]) == (0, 3, False)
    assert body["error"] == "RuntimeError"
    [kept] = (await client.get("/admin/dlq")).json()
    assert kept["attempts"] == seq["attempts"] + 1
    await asyncio.to_thread(flag.unlink)
    done = await client.post(f"/admin/dlq/{seq['id']}/retry")
    assert done.status_code == 200
    assert done.json() == {"id": seq["id"], "applied": 3, "left": 0, "done": True}
    assert (await client.get("/admin/dlq")).json() == []
    await deposit(client, "bad", 4)  # the stream is live again
    await settled(node, 0)
    docs = await documents(node)
    assert docs[BAD] == {"cents": 10, "versions": [1, 2, 3, 4]}
    assert docs["account-ok"] == {"cents": 6, "versions": [1, 2, 3]}


async def test_a_skip_needs_a_reason_and_is_audited(
    client: httpx.AsyncClient, node: Node, flag: Path
) -> None:
    seq = await parked_one(client, node)
    for body in ({}, {"reason": ""}, {"why": "x"}):
        refused = await client.post(f"/admin/dlq/{seq['id']}/skip", json=body)
        assert refused.status_code == 422, body
        assert refused.headers["content-type"] == "application/problem+json"
        assert ["body", "reason"] in [e["loc"] for e in refused.json()["errors"]]
    garbled = await client.post(f"/admin/dlq/{seq['id']}/skip", content=b"{nope")
    assert garbled.status_code == 422
    skipped = await client.post(f"/admin/dlq/{seq['id']}/skip", json={"reason": "refunded by hand"})
    assert skipped.status_code == 200
    record = skipped.json()
    assert (record["id"], record["reason"], record["by"]) == (seq["id"], "refunded by hand", "ops")
    assert record["events"] == 3
    assert (await client.get("/admin/dlq")).json() == []
    audit = (await client.get("/admin/dlq", params={"skipped": "true"})).json()
    assert audit == [record]
    await asyncio.to_thread(flag.unlink)
    await deposit(client, "bad", 4)  # skipped events stay unapplied; later ones fold live
    await settled(node, 0)
    assert (await documents(node))[BAD] == {"cents": 4, "versions": [4]}


async def test_an_empty_filter_is_none_and_an_unknown_service_is_a_422(
    client: httpx.AsyncClient, node: Node
) -> None:
    seq = await parked_one(client, node)
    for params in ({"service": "", "consumer": ""}, {"service": "ledger", "consumer": ""}):
        listed = await client.get("/admin/dlq", params=params)
        assert listed.status_code == 200, params
        assert [s["id"] for s in listed.json()] == [seq["id"]]
    for skipped in ("false", "true"):
        unknown = await client.get("/admin/dlq", params={"service": "nope", "skipped": skipped})
        assert unknown.status_code == 422
        assert unknown.headers["content-type"] == "application/problem+json"
        assert "nope" in unknown.json()["detail"]
        assert [e["loc"] for e in unknown.json()["errors"]] == [["query", "service"]]


async def test_the_dlq_routes_are_in_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/admin/dlq"]) == {"get"}
    assert "422" in paths["/admin/dlq"]["get"]["responses"]
    assert set(paths["/admin/dlq/{sequence}"]) == {"get"}
    retry = paths["/admin/dlq/{sequence}/retry"]["post"]
    assert {"200", "404", "409"} <= set(retry["responses"])
    skip = paths["/admin/dlq/{sequence}/skip"]["post"]
    assert "reason" in skip["requestBody"]["content"]["application/json"]["schema"]["properties"]
