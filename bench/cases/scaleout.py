"""Scale-out: 1 and 2 ``command-api`` processes of one service behind ``deploy/nginx.conf``.

Each run starts two ``bicameral serve --service inventory --role command-api`` copies on
PostgreSQL (events), Redis (reads) and NATS (transport), and nginx twice with the deployed
configuration, its ``inventory_commands`` upstream listing one copy, then both (the order
alternates between runs). The same load generator drives ``ReceiveStock`` through nginx at
the maximum rate each time; the figures are both rates and their ratio, measured side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.cases.http import (
    CLI,
    ROOT,
    bearer_token,
    child_env,
    load,
    message_requests,
    register_products,
    server_backends,
    serving,
)
from bench.registry import Unavailable, bench
from bench.resources import free_port

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
UPSTREAM = re.compile(r"(upstream inventory_commands \{\n)((?:[ \t]*server [^\n]*\n)+)")


def nginx_config(listen: int, copies: list[int]) -> str:
    """Returns ``deploy/nginx.conf`` listening on ``listen``, inventory commands to ``copies``.

    Only the listening port, the ``inventory_commands`` servers and the access log (off)
    change; everything else is the deployed file.
    """
    text = NGINX_CONF.read_text()
    servers = "".join(
        f"        server 127.0.0.1:{port} max_fails=2 fail_timeout=5s;\n" for port in copies
    )
    text, found = UPSTREAM.subn(lambda m: m.group(1) + servers, text)
    if found != 1 or "listen 8080;" not in text:
        raise RuntimeError(f"{NGINX_CONF} no longer has the upstream or listen line expected")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    return re.sub(r"access_log [^;]*;", "access_log off;", text)


def nginx_program() -> str:
    """Returns the nginx executable, or raises Unavailable."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise Unavailable("nginx is not installed (apt-get install nginx-light)")
    return found


def write_config(folder: Path, port: int, copies: list[int]) -> Path:
    """Writes the configuration nginx runs with into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(nginx_config(port, copies))
    return conf


@contextlib.asynccontextmanager
async def nginx(folder: Path, copies: list[int]) -> AsyncIterator[int]:
    """Runs nginx with the deployed configuration in front of ``copies``; yields its port."""
    program = nginx_program()
    port = free_port()
    conf = write_config(folder, port, copies)
    args = ["-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log")]
    args += ["-g", f"daemon off; pid {folder / 'nginx.pid'};"]
    async with serving(args, port, child_env(), program=program):
        yield port


@bench("http.scaleout")
async def scaleout(p: dict[str, Any]) -> dict[str, float]:
    """ReceiveStock through nginx to 1, then 2 command-api copies (or 2, then 1)."""
    data_dir = os.path.join(p["tmp"], "data")
    env = server_backends({**p, "backends": "pg"}, child_env())
    ports = [free_port() for _ in range(2)]
    products = int(p["products"])
    out: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        for port in ports:
            args = [*CLI, "serve", "--service", "inventory", "--role", "command-api"]
            args += ["--port", str(port), "--data-dir", data_dir]
            await stack.enter_async_context(serving(args, port, env))
        token = bearer_token(data_dir, env)  # the servers made the signing key on their start
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        out["bearer"] = 1.0 if token else 0.0
        spec: dict[str, Any] = {
            "requests": message_requests("commands", products),
            "connections": p["connections"],
            "seconds": p["seconds"],
            "headers": headers,
        }
        order = [1, 2] if int(p["uid"], 16) % 2 else [2, 1]
        for n in order:
            async with nginx(Path(p["tmp"]) / f"nginx{n}", ports[:n]) as port:
                if "registered" not in out:
                    await register_products(port, headers, products)
                    out["registered"] = float(products)
                got = await load({**spec, "port": port})
                if got.get("errors"):
                    raise RuntimeError(f"{got['errors']} requests failed")
                out[f"rate_{n}"] = got["rate"]
                out[f"p50_ms_{n}"] = got.get("p50_ms", 0.0)
                out[f"p99_ms_{n}"] = got.get("p99_ms", 0.0)
            await asyncio.sleep(0.2)
    out["rate"] = out["rate_2"]
    out["ratio"] = out["rate_2"] / out["rate_1"] if out["rate_1"] else 0.0
    return out
