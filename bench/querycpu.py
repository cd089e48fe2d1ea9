"""CPU time per HTTP query, in this process, through the whole ASGI app: bicameral's
``GET /inventory/queries/GetProduct`` (bearer token, Redis read models, the API roles of
``bicameral up`` on PostgreSQL events, Redis reads and NATS) against the CRUD app's
(``bench.crud``: FastAPI and an asyncpg ``SELECT`` by key).

``python -m bench.querycpu [--queries 4000] [--rounds 5] [--concurrency 32] [--profile]
[--only ours|crud] [--token]`` fills the read model (every role of every service in this
process, 1,000 products registered), stops, then starts the API roles alone (as ``bicameral
up``'s API process runs them) and sends queries straight to the ASGI app from ``concurrency``
tasks, each round timing ``time.process_time`` (every thread of this process) over ``queries``
queries. Prints µs of CPU per query, the median and each round, and the median of the
kernel's part (system time: the sockets' system calls). No HTTP parsing, no sockets to the
client: what is left is exactly the app's work and its backend client's. ``--profile`` prints
a cProfile of one more round with the process's CPU time as the clock; ``--token`` sends
every query of ours with the consistency token of the last registration (long passed).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from starlette.types import ASGIApp, Message

from bench.resources import RunResources

PRODUCTS = 1000
NEEDS = ("pg", "redis", "nats")
Round = Callable[[int], Awaitable[None]]


def scope(path: str, query: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Returns the ASGI scope of a GET as uvicorn would make it."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def get(app: ASGIApp, path: str, query: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Returns the body of ``app``'s answer to a GET; raises unless it is a 200."""
    status = [0]
    body: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope(path, query, headers), receive, send)
    if status[0] != 200:
        raise RuntimeError(f"GET {path}?{query}: {status[0]} {b''.join(body)!r}")
    return b"".join(body)


def driver(app: ASGIApp, headers: list[tuple[bytes, bytes]], concurrency: int) -> Round:
    """Returns a round: ``n`` GetProduct queries over every product from ``concurrency`` tasks."""
    path = "/inventory/queries/GetProduct"

    async def round_(n: int) -> None:
        async def client(c: int) -> None:
            for i in range(c, n, concurrency):
                await get(app, path, f"sku=p{i % PRODUCTS}", headers)

        await asyncio.gather(*(client(c) for c in range(concurrency)))

    return round_


def counting(callgrind: bool, state: str) -> None:
    """Turns callgrind's instruction counting of this process on or off (with ``--callgrind``:
    run under ``valgrind --tool=callgrind --instr-atstart=no``)."""
    if callgrind:
        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


async def show(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> None:
    """Prints one answer, to see that the case answers what it should."""
    body = await get(app, "/inventory/queries/GetProduct", "sku=p7", headers)
    print(json.dumps({"answer": body.decode()}), flush=True)


async def measure(
    round_: Round, args: argparse.Namespace, name: str, prof: cProfile.Profile | None
) -> dict[str, Any]:
    """Returns µs of process CPU per query over ``args.rounds`` rounds (after one warm-up)."""
    await round_(min(args.queries, 1000))
    rounds, system = [], []
    for _ in range(args.rounds):
        counting(args.callgrind, "on")
        started, kernel = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
        await round_(args.queries)
        rounds.append((time.process_time() - started) * 1e6 / args.queries)
        kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel
        system.append(kernel * 1e6 / args.queries)
        counting(args.callgrind, "off")
    if prof is not None:
        prof.enable()
        await round_(args.queries)
        prof.disable()
    return {
        "case": name,
        "cpu_us_per_query": round(statistics.median(rounds), 1),
        "of_it_system_us": round(statistics.median(system), 1),
        "rounds": [round(r, 1) for r in rounds],
    }


async def ours(args: argparse.Namespace, res: RunResources, prof: cProfile.Profile | None) -> Any:
    from bench.cases.http import server_backends
    from bicameral.consistency import ConsistencyToken
    from bicameral.context import MessageContext, Principal
    from bicameral.errors import NotFoundError
    from bicameral.http.app import create_app
    from bicameral.runtime.apps import load_services
    from bicameral.runtime.auth import AuthSettings, embedded_key
    from bicameral.runtime.node import API_ROLES, ROLES, Node
    from bicameral.runtime.settings import Settings
    from bicameral.security.tokens import issue_token
    from shop.inventory.messages import GetProduct, RegisterProduct

    env = server_backends({**res.params(), "backends": "pg"}, dict(os.environ))
    settings = Settings.load(environ=env, data_dir=res.tmp)
    admin = MessageContext(principal=Principal(subject="bench", roles=frozenset({"admin"})))
    filling = Node(settings, load_services(settings.app), ROLES)
    await filling.start()
    try:
        inventory = filling.runtime("inventory")
        consistency = ConsistencyToken({})
        for start in range(0, PRODUCTS, 50):
            done = await asyncio.gather(
                *(
                    inventory.commands.dispatch(
                        RegisterProduct(sku=f"p{n}", name=f"product {n}", price_cents=100), admin
                    )
                    for n in range(start, min(PRODUCTS, start + 50))
                )
            )
            for result in done:
                consistency = consistency.merge(result.token)
        missing = set(range(PRODUCTS))
        for _ in range(600):  # every product projected (partitions fold in any order)
            for n in sorted(missing):
                try:
                    await inventory.queries.ask(GetProduct(sku=f"p{n}"), admin)
                    missing.discard(n)
                except NotFoundError:
                    break
            if not missing:
                break
            await asyncio.sleep(0.1)
    finally:
        await filling.stop()

    node = Node(settings, load_services(settings.app), API_ROLES)  # as up's API process
    app = create_app(node)
    auth = AuthSettings.from_mapping(settings.auth)
    token = issue_token(
        embedded_key(settings, create=False),
        subject="bench",
        roles=["admin"],
        ttl=timedelta(hours=1),
        issuer=auth.issuer,
        audience=auth.audience,
    )
    headers = [(b"authorization", f"Bearer {token}".encode())]
    if args.token:  # every query waits for the last registration's positions (long passed)
        headers.append((b"x-consistency-token", consistency.encode().encode()))
    async with app.router.lifespan_context(app):
        round_ = driver(app, headers, args.concurrency)
        await show(app, headers)
        return await measure(round_, args, "ours+token" if args.token else "ours", prof)


async def crud(args: argparse.Namespace, res: RunResources, prof: cProfile.Profile | None) -> Any:
    from bench.crud import create_app

    url = res.params()["pg_url"]
    app = create_app(url)
    async with app.router.lifespan_context(app):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.executemany(
                "INSERT INTO products (sku, name, price_cents) VALUES ($1, $2, 100) "
                "ON CONFLICT DO NOTHING",
                [(f"p{n}", f"product {n}") for n in range(PRODUCTS)],
            )
        finally:
            await conn.close()
        round_ = driver(app, [], args.concurrency)
        await show(app, [])
        return await measure(round_, args, "crud", prof)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.querycpu")
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", choices=["ours", "crud"])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--token", action="store_true", help="ours: each query carries a consistency token"
    )
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--dump", help="also write the profile's stats to this file")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions in the timed rounds only (under valgrind --tool=callgrind "
        "--instr-atstart=no; instructions per query = the output's total / rounds x queries)",
    )
    args = parser.parse_args()
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    for name, case in (("ours", ours), ("crud", crud)):
        if args.only and args.only != name:
            continue
        prof = cProfile.Profile(time.process_time) if args.profile else None
        res = asyncio.run(RunResources.acquire(NEEDS))
        try:
            print(json.dumps(run(case(args, res, prof))), flush=True)
        finally:
            asyncio.run(res.release(NEEDS))
        if prof is not None:
            if args.dump:
                prof.dump_stats(f"{args.dump}.{name}")
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(args.sort).print_stats(args.top)
            print(buf.getvalue(), flush=True)


if __name__ == "__main__":
    main()
