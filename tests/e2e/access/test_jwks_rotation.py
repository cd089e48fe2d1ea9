"""Production keys: RS256/EdDSA tokens verified by a JWKS file that rotates under a live API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.apps import load_services
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from tests.jwks import SigningKey, write_jwks

BODY = {"sku": "mug", "name": "Mug", "price_cents": 1200}
PATH = "/inventory/commands/RegisterProduct"


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    return tmp_path / "jwks.json"


@pytest.fixture
async def client(tmp_path: Path, jwks: Path) -> AsyncIterator[httpx.AsyncClient]:
    write_jwks(jwks, OLD)
    auth = {"issuer": "https://id.example", "audience": "shop", "jwks_file": str(jwks)}
    settings = Settings.load(environ={}, data_dir=tmp_path / "data", auth=auth)
    node = Node(settings, load_services("shop.app:services"), ROLES)
    app = create_app(node, manage_node=False)
    await node.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
            yield http
    finally:
        await node.stop()


OLD = SigningKey.rsa("2026-old")
NEW = SigningKey.ed25519("2026-new")


async def register(client: httpx.AsyncClient, token: str, sku: str) -> int:
    response = await client.post(
        PATH, json={**BODY, "sku": sku}, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


async def test_keys_rotate_by_kid_through_the_jwks_file(
    client: httpx.AsyncClient, jwks: Path
) -> None:
    old_token = OLD.sign("root", "admin")
    new_token = NEW.sign("root", "admin")
    assert await register(client, old_token, "a") == 200
    assert await register(client, new_token, "b") == 401

    write_jwks(jwks, OLD, NEW)
    assert await register(client, old_token, "c") == 200
    assert await register(client, new_token, "d") == 200

    write_jwks(jwks, NEW)
    assert await register(client, old_token, "e") == 401
    assert await register(client, new_token, "f") == 200


async def test_the_embedded_key_is_not_accepted_when_a_jwks_file_is_set(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    from bicameral.security.keys import embedded_secret
    from bicameral.security.tokens import issue_token

    token = issue_token(
        embedded_secret(tmp_path / "data"),
        subject="root",
        roles=["admin"],
        issuer="https://id.example",
        audience="shop",
    )
    assert await register(client, token, "a") == 401


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"aud": "other"}, 401),
        ({"iss": "https://evil.example"}, 401),
        ({"exp": 1_000_000}, 401),
        ({"roles": ["customer"]}, 403),
        ({}, 200),
    ],
)
async def test_jwks_tokens_are_checked_like_any_other(
    client: httpx.AsyncClient, claims: dict[str, object], status: int
) -> None:
    token = OLD.sign("root", "admin", **claims)
    assert await register(client, token, "a") == status
