"""Closed-loop drivers: N concurrent clients repeating an operation for a fixed time."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.stats import percentile

__all__ = ["latency_figures", "run_clients", "run_threads"]


def latency_figures(latencies: list[float], count: int, seconds: float) -> dict[str, float]:
    """Returns the rate and the p50/p99 latency (ms) of ``count`` operations in ``seconds``."""
    latencies.sort()
    out = {"rate": count / seconds}
    if latencies:
        out["p50_ms"] = percentile(latencies, 50) * 1000
        out["p99_ms"] = percentile(latencies, 99) * 1000
    return out


async def run_clients(
    clients: int,
    op: Callable[[int, int], Awaitable[Any]],
    seconds: float,
    *,
    warmup: float = 0.5,
    per_op: int = 1,
) -> dict[str, float]:
    """Runs ``op(client, i)`` in a loop on ``clients`` tasks; counts ``per_op`` units per call.

    Calls that finish during the first ``warmup`` seconds are not counted.
    """
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    counted = 0
    latencies: list[float] = []

    async def client(c: int) -> None:
        nonlocal counted
        i = 0
        while True:
            began = time.perf_counter()
            if began >= deadline:
                return
            await op(c, i)
            done = time.perf_counter()
            i += 1
            if began >= measure_from and done <= deadline:
                counted += per_op
                latencies.append(done - began)

    await asyncio.gather(*(client(c) for c in range(clients)))
    return latency_figures(latencies, counted, seconds)


def run_threads(
    clients: int,
    op: Callable[[int, int], Any],
    seconds: float,
    *,
    warmup: float = 0.5,
) -> dict[str, float]:
    """Runs blocking ``op(client, i)`` in a loop on ``clients`` threads (for sync libraries)."""
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    lock = threading.Lock()
    counted = 0
    latencies: list[float] = []
    errors: list[BaseException] = []

    def client(c: int) -> None:
        nonlocal counted
        i = 0
        try:
            while True:
                began = time.perf_counter()
                if began >= deadline:
                    return
                op(c, i)
                done = time.perf_counter()
                i += 1
                if began >= measure_from and done <= deadline:
                    with lock:
                        counted += 1
                        latencies.append(done - began)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return latency_figures(latencies, counted, seconds)
