"""``/console``: one-time sign-in links, session cookies, CSRF, and 401/403 as everywhere."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.http.console.access import CSP
from bicameral.runtime.console import console_audience, sign_in_link
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from tests.parking_app import services

BASE = "http://console.test"
EVIL = "https://evil.example"
PAGE = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Returns settings on memory backends; a test may set the session's lifetime (its
    ``settings`` parameter, in seconds)."""
    embedded_secret(tmp_path)
    memory = {f"{kind}_url": "memory://" for kind in ("events", "reads", "transport")}
    ttl = getattr(request, "param", 3600.0)
    return Settings.load(environ={}, data_dir=tmp_path, console={"session_ttl": ttl}, **memory)


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    node = Node(settings, services(), ROLES)
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


def link(settings: Settings, **kwargs: object) -> str:
    """Returns the path and query of a fresh sign-in link."""
    url = urlsplit(sign_in_link(settings, BASE, "ops", **kwargs))  # type: ignore[arg-type]
    return f"{url.path}?{url.query}"


def bearer(settings: Settings, roles: list[str], **kwargs: object) -> dict[str, str]:
    token = issue_token(embedded_secret(settings.data_dir), subject="ops", roles=roles, **kwargs)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def link_token(settings: Settings, subject: str, roles: list[str], ttl: timedelta) -> str:
    """Returns a token for the console's audience, minted by hand."""
    secret = embedded_secret(settings.data_dir)
    return issue_token(
        secret, subject=subject, roles=roles, ttl=ttl, audience=console_audience("bicameral")
    )


async def post(client: httpx.AsyncClient, path: str, body: str, **headers: str) -> httpx.Response:
    """Posts a URL-encoded form, as a browser does."""
    form = {"content-type": "application/x-www-form-urlencoded", **headers}
    return await client.post(path, headers=form, content=body)


async def signed_in(client: httpx.AsyncClient, settings: Settings) -> str:
    """Signs the client in; returns the session's CSRF token, read from the overview."""
    opened = await client.get(link(settings))
    assert opened.status_code == 303, opened.text
    page = await client.get("/console", headers=PAGE)
    assert page.status_code == 200, page.text
    return page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def test_a_sign_in_link_sets_a_strict_http_only_cookie_and_goes_to_the_overview(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    opened = await client.get(link(settings))
    assert opened.status_code == 303
    assert opened.headers["location"] == "/console"
    cookie = opened.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/console" in cookie
    assert opened.headers["referrer-policy"] == "same-origin"
    page = await client.get("/console", headers=PAGE)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "signed in as" in page.text
    assert "ops" in page.text


async def test_a_sign_in_link_works_once(client: httpx.AsyncClient, settings: Settings) -> None:
    path = link(settings)
    assert (await client.get(path)).status_code == 303
    again = await client.get(path)
    assert again.status_code == 401
    assert "used before" in again.text


async def test_a_sign_in_link_expires_after_five_minutes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    stale = await client.get(link(settings, now=time.time() - 301))
    assert stale.status_code == 401
    assert "expired" in stale.text


@pytest.mark.parametrize(
    ("roles", "ttl", "status"),
    [(["admin"], timedelta(hours=1), 401), (["customer"], timedelta(minutes=5), 403)],
    ids=["valid-longer-than-five-minutes", "not-an-admin"],
)
async def test_a_link_too_long_lived_or_of_a_non_admin_is_refused(
    client: httpx.AsyncClient, settings: Settings, roles: list[str], ttl: timedelta, status: int
) -> None:
    token = link_token(settings, "eve", roles, ttl)
    refused = await client.get("/console/sign-in", params={"token": token})
    assert refused.status_code == status
    assert "set-cookie" not in refused.headers


async def test_links_and_api_tokens_are_not_interchangeable(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    api_token = bearer(settings, ["admin"])["Authorization"].removeprefix("Bearer ")
    assert (await client.get("/console/sign-in", params={"token": api_token})).status_code == 401
    link_token = link(settings).split("token=", 1)[1]
    as_bearer = {"Authorization": f"Bearer {link_token}"}
    assert (await client.get("/console/session", headers=as_bearer)).status_code == 401


async def test_without_credentials_a_browser_goes_to_sign_in_and_an_api_client_gets_401(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/console/events", headers=PAGE)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/sign-in"
    api = await client.get("/console/api/overview")
    assert api.status_code == 401
    assert api.headers["content-type"] == "application/problem+json"
    sign_in = await client.get("/console/sign-in")
    assert sign_in.status_code == 200
    assert "bicameral console --data-dir" in sign_in.text


async def test_bearer_tokens_401_403_and_admin(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    expired = bearer(settings, ["admin"], now=time.time() - 7200)
    assert (await client.get("/console", headers={**PAGE, **expired})).status_code == 401
    customer = bearer(settings, ["customer"])
    refused = await client.get("/console", headers={**PAGE, **customer})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    admin = bearer(settings, ["admin"])
    assert (await client.get("/console", headers={**PAGE, **admin})).status_code == 200
    status = await client.get("/console/api/overview", headers=admin)
    assert status.status_code == 200
    assert {c["service"] for c in status.json()["consumers"]} == {"bank", "ledger"}


async def test_sign_out_needs_the_csrf_token_and_the_own_origin(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    csrf = await signed_in(client, settings)
    assert (await post(client, "/console/sign-out", "csrf=wrong")).status_code == 403
    foreign = await post(client, "/console/sign-out", f"csrf={csrf}", Origin=EVIL)
    assert foreign.status_code == 403
    cross = await post(
        client, "/console/sign-out", f"csrf={csrf}", **{"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert (await client.get("/console", headers=PAGE)).status_code == 200
    out = await post(client, "/console/sign-out", f"csrf={csrf}", Origin=BASE)
    assert out.status_code == 303
    assert out.headers["location"] == "/console/sign-in?signed-out=1"
    assert "max-age=0" in out.headers["set-cookie"].lower()


async def test_a_signed_out_session_is_over_even_with_its_cookie(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    csrf = await signed_in(client, settings)
    cookie = dict(client.cookies)
    await post(client, "/console/sign-out", f"csrf={csrf}")
    client.cookies.update(cookie)
    back = await client.get("/console", headers=PAGE)
    assert back.status_code == 303
    assert back.headers["location"] == "/console/sign-in?expired=1"


@pytest.mark.parametrize("settings", [0.5], indirect=True)
async def test_an_expired_session_goes_back_to_sign_in(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get(link(settings))).status_code == 303
    await asyncio.sleep(settings.console.session_ttl + 0.2)
    back = await client.get("/console", headers=PAGE)
    assert back.status_code == 303
    assert back.headers["location"] == "/console/sign-in?expired=1"
    assert (await client.get("/console/session")).status_code == 401


async def test_signing_in_with_a_bearer_token_checks_the_origin(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = bearer(settings, ["admin"])["Authorization"].removeprefix("Bearer ")
    assert (
        await post(client, "/console/sign-in", f"token={token}", Origin=EVIL)
    ).status_code == 403
    done = await post(client, "/console/sign-in", f"token={token}", Origin=BASE)
    assert done.status_code == 303
    assert (await client.get("/console/session")).json() == {"subject": "ops", "session": True}


async def test_a_sign_in_page_reached_from_another_site_goes_on_from_this_one(
    client: httpx.AsyncClient,
) -> None:
    """A link clicked on another site brings no SameSite=Strict cookie to the overview: the
    sign-in page it lands on goes on to the overview once, as a navigation of this site."""
    landed = await client.get("/console/sign-in", headers={"Sec-Fetch-Site": "cross-site"})
    assert '<meta http-equiv="refresh" content="0; url=/console">' in landed.text
    here = await client.get("/console/sign-in", headers={"Sec-Fetch-Site": "same-origin"})
    assert "refresh" not in here.text


async def test_the_stream_sends_the_overview_as_server_sent_events(
    node: Node, settings: Settings
) -> None:
    """Read as a browser's EventSource does, until the first status, then it goes away."""
    app = create_app(node, manage_node=False)
    token = bearer(settings, ["admin"])["Authorization"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/console/stream",
        "raw_path": b"/console/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"console.test"), (b"authorization", token)],
        "server": ("console.test", 80),
        "client": ("127.0.0.1", 1),
    }
    sent: list[dict[str, Any]] = []
    status = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await status.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if b"event: status\n" in message.get("body", b""):
            status.set()

    await asyncio.wait_for(app(scope, receive, send), 60)
    start = sent[0]
    assert start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body.startswith(b"retry: 1000\n\n")
    data = body.split(b"event: status\ndata: ", 1)[1].split(b"\n\n", 1)[0]
    assert {c["service"] for c in json.loads(data)["consumers"]} == {"bank", "ledger"}
