"""HTTP figures: bicameral's API and the bare-Starlette ceiling, each driven by a separate
load process (``bench.httpload``) against a server in its own process.

Each case measures the maximum rate (closed loop, ``connections`` keep-alive connections),
then the latency at half that rate (paced). With a bearer token (``BENCH_HTTP_TOKEN``, or
the output of ``BENCH_TOKEN_CMD``), every request carries ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench.registry import Unavailable, bench
from bench.resources import NATS_URL, REDIS_URL, free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = ["-c", "from bicameral.cli.main import main; main()"]
TOKEN_CMD = "{cli} token issue --data-dir {data_dir} --subject bench --roles admin"


def child_env(root: str | None = None) -> dict[str, str]:
    """Returns the environment for child processes: this repo's src and bench importable (or
    those of the checkout at ``root``, a baseline to compare with)."""
    env = dict(os.environ)
    base = Path(root) if root else ROOT
    paths = [str(base / "src"), str(base / "shop" / "src"), str(base)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@contextlib.asynccontextmanager
async def serving(
    args: list[str], port: int, env: dict[str, str], program: str = sys.executable
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Runs a server process until the block ends (yielding it); waits for its /health first."""
    proc = await asyncio.create_subprocess_exec(
        program, *args, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if proc.returncode is not None:
                    raise RuntimeError(f"server {args} exited with {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"server {args} never became healthy")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def load(spec: dict[str, Any]) -> dict[str, float]:
    """Runs the load generator process and returns its figures."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.httpload",
        json.dumps(spec),
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
        raise RuntimeError(f"load generator failed with {proc.returncode}: {last}")
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


async def max_and_half(spec: dict[str, Any]) -> dict[str, float]:
    """Returns the max-rate figures and, as ``half_*``, the latency at half that rate."""
    top = await load(spec)
    half = await load({**spec, "rate": top["rate"] / 2})
    out = dict(top)
    out["half_rate"] = half["rate"]
    out["half_p50_ms"] = half.get("p50_ms", 0.0)
    out["half_p99_ms"] = half.get("p99_ms", 0.0)
    out["errors"] = top.get("errors", 0) + half.get("errors", 0)
    if out["errors"]:
        raise RuntimeError(f"{out['errors']} requests failed")
    return out


def bearer_token(data_dir: str, env: dict[str, str]) -> str | None:
    """Returns a bearer token for the API, or None when there is no way to get one yet."""
    if os.environ.get("BENCH_HTTP_TOKEN"):
        return os.environ["BENCH_HTTP_TOKEN"]
    template = os.environ.get("BENCH_TOKEN_CMD", TOKEN_CMD)
    cli = shlex.join([sys.executable, *CLI])
    cmd = template.format(cli=cli, python=sys.executable, data_dir=data_dir)
    import subprocess

    done = subprocess.run(shlex.split(cmd), env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return done.stdout.strip().splitlines()[-1]


@bench("http.hello")
async def hello(p: dict[str, Any]) -> dict[str, float]:
    """The ceiling: GET /hello on a bare Starlette route under uvicorn."""
    port = free_port()
    async with serving(["-m", "bench.hello", str(port)], port, child_env()):
        spec = {
            "port": port,
            "requests": [["GET", "/hello", None]],
            "connections": p["connections"],
            "seconds": p["seconds"],
        }
        return await max_and_half(spec)


async def register_products(port: int, headers: dict[str, str], products: int) -> None:
    """Registers products p0.. over HTTP, 32 at a time."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as c:
        for start in range(0, products, 32):
            replies = await asyncio.gather(
                *(
                    c.post(
                        "/inventory/commands/RegisterProduct",
                        json={"sku": f"p{n}", "name": f"product {n}", "price_cents": 100},
                    )
                    for n in range(start, min(products, start + 32))
                )
            )
            bad = [r for r in replies if r.status_code != 200]
            if bad:
                raise Unavailable(f"cannot register products: {bad[0].status_code} {bad[0].text}")


async def wait_readable(port: int, headers: dict[str, str], products: int) -> None:
    """Waits until GetProduct answers 200 for every product (the read model caught up)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as c:
        missing = list(range(products))
        for _ in range(300):
            left: list[int] = []
            for start in range(0, len(missing), 32):
                some = missing[start : start + 32]
                replies = await asyncio.gather(
                    *(c.get("/inventory/queries/GetProduct", params={"sku": f"p{n}"}) for n in some)
                )
                left += [n for n, r in zip(some, replies, strict=True) if r.status_code != 200]
            missing = left
            if not missing:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{len(missing)} products never became readable")


def message_requests(kind: str, products: int) -> list[list[Any]]:
    """Returns the load generator's requests: ReceiveStock or GetProduct over every product."""
    if kind == "commands":
        return [
            ["POST", "/inventory/commands/ReceiveStock", f'{{"sku":"p{n}","quantity":1}}']
            for n in range(products)
        ]
    return [["GET", f"/inventory/queries/GetProduct?sku=p{n}", None] for n in range(products)]


def server_backends(p: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """Returns ``env`` with the backends ``p["backends"]`` names: embedded (default) or pg.

    ``pg``: each service's events in PostgreSQL database ``<run db>_<service>`` (made by the
    server on its start), read models in Redis and the transport on NATS JetStream, every name
    carrying the run's uid.
    """
    if p.get("backends", "embedded") == "embedded":
        return env
    base = p["pg_url"]
    return {
        **env,
        "BICAMERAL_EVENTS_URL": base + "_{service}?create_database=true",
        "BICAMERAL_READS_URL": f"{REDIS_URL}?prefix=bench{p['uid']}_{{service}}",
        "BICAMERAL_TRANSPORT_URL": f"{NATS_URL}?prefix=bench{p['uid']}",
    }


async def bicameral_http(p: dict[str, Any], kind: str) -> dict[str, float]:
    port = free_port()
    data_dir = os.path.join(p["tmp"], "data")
    env = server_backends(p, child_env(p.get("root")))
    if p.get("roles"):
        roles = [arg for role in p["roles"] for arg in ("--role", role)]
        args = [*CLI, "serve", "--service", "inventory", *roles]
        args += ["--port", str(port), "--data-dir", data_dir]
    else:
        args = [*CLI, "up", "--port", str(port), "--data-dir", data_dir]
    products = int(p["products"])
    async with serving(args, port, env):
        token = bearer_token(data_dir, env)  # the server made the signing key as it started
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        await register_products(port, headers, products)
        if kind == "queries":
            await wait_readable(port, headers, products)
        spec = {
            "port": port,
            "requests": message_requests(kind, products),
            "connections": p["connections"],
            "seconds": p["seconds"],
            "headers": headers,
        }
        out = await max_and_half(spec)
        out["bearer"] = 1.0 if token else 0.0
        return out


@bench("http.commands")
async def commands(p: dict[str, Any]) -> dict[str, float]:
    """POST /inventory/commands/ReceiveStock against ``bicameral up``."""
    return await bicameral_http(p, "commands")


@bench("http.queries")
async def queries(p: dict[str, Any]) -> dict[str, float]:
    """GET /inventory/queries/GetProduct against ``bicameral up``."""
    return await bicameral_http(p, "queries")


async def crud_http(p: dict[str, Any], kind: str) -> dict[str, float]:
    port = free_port()
    products = int(p["products"])
    async with serving(["-m", "bench.crud", str(port), p["pg_url"]], port, child_env()):
        await register_products(port, {}, products)
        spec = {
            "port": port,
            "requests": message_requests(kind, products),
            "connections": p["connections"],
            "seconds": p["seconds"],
        }
        return await max_and_half(spec)


@bench("crud.commands")
async def crud_commands(p: dict[str, Any]) -> dict[str, float]:
    """The CRUD peer: POST ReceiveStock, one UPDATE ... RETURNING through an asyncpg pool."""
    return await crud_http(p, "commands")


@bench("crud.queries")
async def crud_queries(p: dict[str, Any]) -> dict[str, float]:
    """The CRUD peer: GET GetProduct, one SELECT by key through an asyncpg pool."""
    return await crud_http(p, "queries")
