"""CPU time per HTTP command (or query) of ``bicameral up``, by process, at a fixed rate.

``python -m bench.cpu [--rate 400] [--seconds 5] [--root DIR] [--pg] [--queries] [--crud]``
starts ``bicameral up`` (of the checkout at ``DIR``, default this one) on embedded defaults
(``--pg``: PostgreSQL events, Redis reads and NATS, as ``ours.http.pg.*``), registers 1,000
products, sends ``ReceiveStock`` (``--queries``: ``GetProduct``, once every product is
readable) at ``rate`` requests/s (``0``: as fast as it answers) from ``bench.httpload`` and
prints the CPU time (user + system, from ``/proc``) the server process and each of its child
processes spent per request. ``--crud`` serves the CRUD app (``bench.crud``, PostgreSQL)
instead. CPU time per request hardly depends on how busy the machine is, where a rate does: on
a shared machine it is the steadier way to compare two versions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.cases.http import (
    CLI,
    bearer_token,
    child_env,
    load,
    message_requests,
    register_products,
    server_backends,
    serving,
    wait_readable,
)
from bench.resources import RunResources, free_port

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Returns the user + system CPU seconds of process ``pid`` so far."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """Returns the user and the system CPU seconds of process ``pid`` so far."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def tree(pid: int) -> list[int]:
    """Returns ``pid`` and the pids of its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if parent == current:
                    todo.append(int(entry.name))
    return found


async def measure(
    root: str | None,
    rate: float,
    seconds: float,
    pg: bool,
    kind: str = "commands",
    crud: bool = False,
) -> dict[str, float]:
    needs = ("pg", "redis", "nats") if pg or crud else ()
    res = await RunResources.acquire(needs)
    try:
        params = {**res.params(), "backends": "pg" if pg else "embedded"}
        return await _measure(root, rate, seconds, params, kind, crud)
    finally:
        await res.release(needs)


async def _measure(
    root: str | None,
    rate: float,
    seconds: float,
    params: dict[str, Any],
    kind: str = "commands",
    crud: bool = False,
) -> dict[str, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = str(Path(tmp) / "data")
        env = server_backends(params, child_env(root))
        args = [*CLI, "up", "--port", str(port), "--data-dir", data_dir]
        if crud:
            args, env = ["-m", "bench.crud", str(port), params["pg_url"]], child_env()
        async with serving(args, port, env) as proc:
            token = None if crud else bearer_token(data_dir, env)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            await register_products(port, headers, 1000)
            if kind == "queries":
                await wait_readable(port, headers, 1000)
            await asyncio.sleep(1.0)  # the workers catch up with the registrations
            pids = tree(proc.pid)
            before = {pid: cpu_split(pid) for pid in pids}
            spec = {
                "port": port,
                "requests": message_requests(kind, 1000),
                "connections": 32,
                "seconds": seconds,
                "warmup": 0.0,
                "headers": headers,
            }
            if rate > 0:
                spec["rate"] = rate
            got = await load(spec)
            await asyncio.sleep(0.5)  # the workers finish the last commands
            sent = got["rate"] * seconds
            out = {"rate": got["rate"], "p99_ms": got["p99_ms"]}
            for n, pid in enumerate(pids):
                name = "api" if n == 0 else f"worker{n}"
                unit = "query" if kind == "queries" else "command"
                user, system = (
                    now - then for now, then in zip(cpu_split(pid), before[pid], strict=True)
                )
                out[f"{name}_us_per_{unit}"] = (user + system) / sent * 1e6
                out[f"{name}_system_us"] = system / sent * 1e6
            return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu")
    parser.add_argument("--rate", type=float, default=400.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--root", default=None, help="the checkout whose bicameral to run")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL events, Redis, NATS")
    parser.add_argument("--queries", action="store_true", help="GetProduct, not ReceiveStock")
    parser.add_argument("--crud", action="store_true", help="the CRUD app (bench.crud) instead")
    args = parser.parse_args()
    kind = "queries" if args.queries else "commands"
    found = measure(args.root, args.rate, args.seconds, args.pg, kind, args.crud)
    print(json.dumps(asyncio.run(found)))


if __name__ == "__main__":
    main()
