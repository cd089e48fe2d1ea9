"""The machine a run measured: cores, memory, CPU, server and library versions."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
from typing import Any

from bench.resources import NATS_URL, PG_ADMIN_URL, REDIS_URL

__all__ = ["describe", "load_average"]


def _meminfo() -> str:
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _cpu() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


async def _servers() -> dict[str, str]:
    out = {"PostgreSQL": "unreachable", "Redis": "unreachable", "NATS": "unreachable"}
    with contextlib.suppress(Exception):
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        out["PostgreSQL"] = (await conn.fetchval("SHOW server_version")).split()[0]
        fsync = await conn.fetchval("SHOW fsync")
        commit = await conn.fetchval("SHOW synchronous_commit")
        out["PostgreSQL"] += f" (fsync={fsync}, synchronous_commit={commit})"
        await conn.close()
    with contextlib.suppress(Exception):
        import redis.asyncio as redis

        client = redis.Redis.from_url(REDIS_URL)
        out["Redis"] = str((await client.info("server"))["redis_version"])
        await client.aclose()
    with contextlib.suppress(Exception):
        import nats

        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        out["NATS"] = str(nc._server_info.get("version", "?")) + " (JetStream)"
        await nc.close()
    return out


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    """Returns the 1, 5 and 15-minute load averages (other work on the shared machine)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


def describe() -> dict[str, Any]:
    """Returns the machine description for the report."""
    import sqlite3

    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "memory": _meminfo(),
        "cpu": _cpu(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "load average at start": load_average(),
    }
    info.update(asyncio.run(_servers()))
    info["libraries"] = ", ".join(
        f"{p} {_version(p)}"
        for p in ("eventsourcing", "uvicorn", "starlette", "fastapi", "asyncpg", "uvloop")
    )
    return info
