"""Profiles a hot path with cProfile and prints where the time goes.

``python -m bench.profile sqlite-commands [--clients 16] [--seconds 5]``: the CommandBus on
SQLite, in this process. ``python -m bench.profile http-commands|http-queries``: a real
uvicorn server (same settings as ``bicameral up``) profiled in this process while a separate
``bench.httpload`` process drives it; like ``bicameral up``, this process serves the API roles
and a supervised child process runs the worker roles (not profiled).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.resources import RunResources


async def sqlite_commands(args: argparse.Namespace, prof: cProfile.Profile) -> None:
    from bench.cases.ours import CTX, register_products, sku
    from bench.drive import run_clients
    from bicameral.bus import CommandBus
    from bicameral.eventstore.sqlite import SqliteEventStore
    from shop.inventory.messages import ReceiveStock
    from shop.inventory.service import inventory

    store = SqliteEventStore("inventory", str(Path(args.tmp) / "events.db"))
    await store.start()
    bus = CommandBus(inventory, store)
    await register_products(bus, 1000)
    clients = args.clients

    async def op(c: int, i: int) -> None:
        await bus.dispatch(ReceiveStock(sku=sku(c, i, clients, 1000), quantity=1), CTX)

    prof.enable()
    out = await run_clients(clients, op, args.seconds, warmup=0)
    prof.disable()
    await store.close()
    print(json.dumps(out))


async def http(args: argparse.Namespace, prof: cProfile.Profile, kind: str) -> None:
    import uvicorn

    from bench.cases.http import bearer_token, child_env, register_products, server_backends
    from bench.resources import free_port
    from bicameral.http.app import create_app
    from bicameral.http.server import server_config
    from bicameral.runtime.apps import load_services
    from bicameral.runtime.node import API_ROLES, Node
    from bicameral.runtime.settings import Settings
    from bicameral.runtime.workers import WorkerProcess, tell_appends, worker_command

    port = free_port()
    env = dict(os.environ)
    if args.pg is not None:  # PostgreSQL events, Redis reads, NATS, named after the run
        env = server_backends({**args.pg.params(), "backends": "pg"}, env)
    settings = Settings.load(environ=env, data_dir=args.tmp, port=port)
    node = Node(settings, load_services(settings.app), API_ROLES)
    notifiers = [runtime.notifier for runtime in node.runtimes.values()]
    os.environ.update(env)  # the worker process reads the same backends
    node.companion = process = WorkerProcess(worker_command(["--data-dir", args.tmp]), notifiers)
    tell_appends(node, process)
    server = uvicorn.Server(server_config(create_app(node), settings))  # makes the signing key
    token = bearer_token(args.tmp, env)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await register_products(port, headers, 1000)
    if kind == "commands":
        requests: list[Any] = [
            ["POST", "/inventory/commands/ReceiveStock", f'{{"sku":"p{n}","quantity":1}}']
            for n in range(1000)
        ]
    else:
        requests = [["GET", f"/inventory/queries/GetProduct?sku=p{n}", None] for n in range(1000)]
    spec = {
        "port": port,
        "requests": requests,
        "connections": 32,
        "seconds": args.seconds,
        "headers": headers,
    }
    prof.enable()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.httpload",
        json.dumps(spec),
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    prof.disable()
    print(out.decode().strip())
    server.should_exit = True
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("target", choices=["sqlite-commands", "http-commands", "http-queries"])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument(
        "--pg",
        action="store_true",
        help="HTTP targets on PostgreSQL events, Redis reads and NATS (default: embedded)",
    )
    parser.add_argument(
        "--wall", action="store_true", help="wall-clock timer (default: this thread's CPU time)"
    )
    parser.add_argument("--save", default=None, help="also write the raw stats to this file")
    args = parser.parse_args()
    # CPU time of the event-loop thread: on a loaded machine, wall time charges every
    # syscall with the time the process spent descheduled.
    prof = cProfile.Profile() if args.wall else cProfile.Profile(time.thread_time)
    with tempfile.TemporaryDirectory(prefix="bicameral-profile-") as tmp:
        args.tmp = tmp
        try:
            import uvloop

            run: Any = uvloop.run
        except ImportError:
            run = asyncio.run
        needs = ("pg", "redis", "nats")
        args.pg = asyncio.run(RunResources.acquire(needs)) if args.pg else None
        try:
            if args.target == "sqlite-commands":
                run(sqlite_commands(args, prof))
            else:
                run(http(args, prof, args.target.removeprefix("http-")))
        finally:
            if args.pg is not None:
                asyncio.run(args.pg.release(needs))
    if args.save:
        prof.dump_stats(args.save)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(args.sort)
    stats.print_stats(args.top)
    print(buf.getvalue())


if __name__ == "__main__":
    main()
