"""The CLI as a newcomer uses it: get a token, call the API with it, see who did what."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from bicameral.cli.main import app
from bicameral.http.app import create_app
from bicameral.runtime.apps import load_services
from bicameral.runtime.auth import verifier_for
from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.security.keys import EMBEDDED_KEY_FILE, embedded_secret
from tests.e2e.order_flow.settling import settle

runner = CliRunner()


def issue(data_dir: Path, *args: str) -> str:
    embedded_secret(data_dir)  # made by the server's first start
    result = runner.invoke(app, ["token", "issue", "--data-dir", str(data_dir), *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_token_issue_prints_a_token_the_api_accepts(tmp_path: Path) -> None:
    token = issue(tmp_path, "--subject", "alice", "--roles", "staff,admin", "--ttl", "15m")
    principal = verifier_for(Settings.load(environ={}, data_dir=tmp_path)).verify(token)
    assert principal.subject == "alice"
    assert principal.roles == {"staff", "admin"}
    assert stat.S_IMODE((tmp_path / EMBEDDED_KEY_FILE).stat().st_mode) == 0o600


def test_token_issue_without_a_key_says_where_it_looked_and_makes_none(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    args = ["token", "issue", "--subject", "a", "--data-dir", str(data_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert str((data_dir / EMBEDDED_KEY_FILE).absolute()) in result.stderr
    assert f"bicameral up --data-dir {data_dir}" in result.stderr
    assert not data_dir.exists()


def test_token_issue_refuses_a_bad_ttl_in_one_line(tmp_path: Path) -> None:
    args = ["token", "issue", "--subject", "a", "--ttl", "soon", "--data-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "not a duration" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_events_tail_shows_who_sent_each_command(settings: Settings) -> None:
    token = issue(settings.data_dir, "--subject", "sam", "--roles", "staff")

    async def register() -> int:
        node = Node(settings, load_services("shop.app:services"), ROLES)
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node, manage_node=False))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
                response = await client.post(
                    "/inventory/commands/RegisterProduct",
                    json={"sku": "mug", "name": "Mug", "price_cents": 1200},
                    headers={"Authorization": f"Bearer {token}"},
                )
                return response.status_code
        finally:
            await node.stop()

    assert asyncio.run(register()) == 200
    result = runner.invoke(
        app,
        ["events", "tail", "--data-dir", str(settings.data_dir), "--app", "shop.app:services"],
    )
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.stdout.splitlines() if "ProductRegistered" in ln]
    assert line.endswith("sam[staff]")


def test_events_tail_shows_the_user_behind_each_saga_step(settings: Settings) -> None:
    root = issue(settings.data_dir, "--subject", "root", "--roles", "admin")
    alice = issue(settings.data_dir, "--subject", "alice", "--roles", "customer")

    async def order_flow() -> None:
        node = Node(settings, load_services("shop.app:services"), ROLES)
        await node.start()
        try:
            transport = httpx.ASGITransport(app=create_app(node, manage_node=False))
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
                for path, token, body in (
                    (
                        "inventory/commands/RegisterProduct",
                        root,
                        {"sku": "mug", "name": "Mug", "price_cents": 100},
                    ),
                    ("inventory/commands/ReceiveStock", root, {"sku": "mug", "quantity": 1}),
                    (
                        "payments/commands/DepositFunds",
                        alice,
                        {"customer_id": "alice", "amount_cents": 100},
                    ),
                    (
                        "orders/commands/PlaceOrder",
                        alice,
                        {
                            "order_id": "o1",
                            "customer_id": "alice",
                            "lines": [{"sku": "mug", "quantity": 1}],
                        },
                    ),
                ):
                    headers = {"Authorization": f"Bearer {token}"}
                    response = await client.post(f"/{path}", json=body, headers=headers)
                    assert response.status_code == 200, response.text
            await settle(node)
        finally:
            await node.stop()

    asyncio.run(order_flow())
    result = runner.invoke(
        app,
        [
            "events",
            "tail",
            "--service",
            "payments",
            "--data-dir",
            str(settings.data_dir),
            "--app",
            "shop.app:services",
        ],
    )
    assert result.exit_code == 0, result.output
    (line,) = [ln for ln in result.stdout.splitlines() if "PaymentCaptured" in ln]
    assert line.endswith("service:payments[service] for alice")


def test_up_prints_how_to_get_a_token_and_the_api_takes_it(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    command = [sys.executable, "-m", "bicameral.cli.main", "up", "--port", str(port)]
    command += ["--data-dir", str(data_dir), "--app", "shop.app:services"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(7)]
        issue_line = next(line for line in banner if "bicameral token issue" in line)
        assert f"--data-dir {data_dir}" in issue_line
        assert any('curl -H "Authorization: Bearer $TOKEN"' in line for line in banner)
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base)
        token = issue(data_dir, "--subject", "me", "--roles", "admin")
        body = {"sku": "mug", "name": "Mug", "price_cents": 1200}
        url = f"{base}/inventory/commands/RegisterProduct"
        assert httpx.post(url, json=body).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.post(url, json=body, headers=auth).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(base: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} did not become healthy")
