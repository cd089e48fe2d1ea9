"""The console's pages: parked events retried and skipped (with the session's CSRF token), the
event log and an event's principal, rebuilds; every user-supplied value escaped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bicameral.http.app import create_app
from bicameral.runtime.console import sign_in_link
from bicameral.runtime.node import Node
from tests.unit.test_http_dlq import BAD, deposit, flag, headers, node, parked_one

__all__ = ["flag", "node"]  # fixtures of test_http_dlq, used here

PAGE = {"Accept": "text/html"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
XSS = '<img src=x onerror="alert(1)">'


@pytest.fixture
async def clients(node: Node, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Returns an admin's browser signed in to the console, and its CSRF token."""
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as browser:
        link = urlsplit(sign_in_link(node.settings, "http://t", "ops"))
        assert (await browser.get(f"{link.path}?{link.query}")).status_code == 303
        page = (await browser.get("/console/parked", headers=PAGE)).text
        yield browser, page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture
async def admin(node: Node, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(node, manage_node=False)
    transport = httpx.ASGITransport(app=app)
    auth = headers(tmp_path, ["admin"], subject=XSS)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as c:
        yield c


async def test_parked_events_are_retried_and_skipped_with_the_csrf_token(
    clients: tuple[httpx.AsyncClient, str], admin: httpx.AsyncClient, node: Node
) -> None:
    browser, csrf = clients
    seq = await parked_one(admin, node)
    page = await browser.get("/console/parked", headers=PAGE)
    assert seq["id"] in page.text
    assert "books.v1:bank" in page.text
    skip = f"/console/parked/{seq['id']}/skip"
    forged = await browser.post(skip, headers=FORM, content="reason=gone")
    assert forged.status_code == 403
    assert (await admin.get("/admin/dlq")).json() != []
    retried = await browser.post(
        f"/console/parked/{seq['id']}/retry", headers=FORM, content=f"csrf={csrf}"
    )
    assert retried.status_code == 303
    shown = await browser.get(retried.headers["location"], headers=PAGE)
    assert "failed again" in shown.text
    skipped = await browser.post(skip, headers=FORM, content=f"csrf={csrf}&reason=a+test")
    assert skipped.status_code == 303
    assert (await admin.get("/admin/dlq")).json() == []
    [record] = (await admin.get("/admin/dlq", params={"skipped": "true"})).json()
    assert record["by"] == "ops"
    assert record["reason"] == "a test"


async def test_the_event_log_shows_who_acted_escaped(
    clients: tuple[httpx.AsyncClient, str], admin: httpx.AsyncClient
) -> None:
    browser, _ = clients
    await deposit(admin, BAD.removeprefix("account-"), 5)
    page = await browser.get("/console/events", params={"service": "bank"}, headers=PAGE)
    assert page.status_code == 200
    assert XSS not in page.text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;[admin]" in page.text
    detail = await browser.get("/console/events/bank/1", headers=PAGE)
    assert detail.status_code == 200
    assert XSS not in detail.text
    assert "bank.Deposited" in detail.text
    assert (await browser.get("/console/events/bank/99", headers=PAGE)).status_code == 404
    unknown = await browser.get("/console/events", params={"service": "nope"}, headers=PAGE)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["query", "service"]


async def test_rebuilds_and_the_overview_render(clients: tuple[httpx.AsyncClient, str]) -> None:
    browser, _ = clients
    rebuilds = await browser.get("/console/rebuilds", headers=PAGE)
    assert "No read model is being rebuilt." in rebuilds.text
    overview = await browser.get("/console", headers=PAGE)
    assert 'id="lag-chart"' in overview.text
    assert "books.v1:bank" in overview.text
    css = await browser.get("/console/static/console.css")
    assert css.headers["content-type"].startswith("text/css")
    assert (await browser.get("/console/static/../html.py")).status_code == 404
