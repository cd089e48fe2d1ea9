"""The HTTP load generator, run as its own process: keep-alive HTTP/1.1 on raw asyncio streams.

``python -m bench.httpload '{"port": P, "requests": [[method, path, body], ...], ...}'``
prints ``{"rate": req/s, "p50_ms": ..., "p99_ms": ..., "errors": n}``. Each connection sends
the listed requests round-robin (offset by connection). With ``"rate"`` set, connections are
paced to that total rate (open loop per connection) instead of sending as fast as answered.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.drive import latency_figures


def encode(method: str, path: str, body: str | None, headers: dict[str, str]) -> bytes:
    """Returns one HTTP/1.1 request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    payload = body.encode() if body is not None else b""
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def read_response(reader: asyncio.StreamReader) -> int:
    """Returns the status of the next response, having read its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(spec: dict[str, Any]) -> dict[str, float]:
    """Returns the figures of one load run."""
    headers = spec.get("headers", {})
    requests = [encode(m, p, b, headers) for m, p, b in spec["requests"]]
    conns = int(spec["connections"])
    seconds, warmup = float(spec["seconds"]), float(spec.get("warmup", 0.5))
    rate = spec.get("rate")
    interval = conns / float(rate) if rate else 0.0
    start = time.perf_counter()
    measure_from, deadline = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    counted = errors = 0

    async def connection(c: int) -> None:
        nonlocal counted, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", int(spec["port"]))
        i = c
        next_at = start + (interval * c / conns if interval else 0.0)
        try:
            while True:
                if interval:
                    now = time.perf_counter()
                    if next_at > now:
                        await asyncio.sleep(next_at - now)
                    next_at += interval
                began = time.perf_counter()
                if began >= deadline:
                    return
                writer.write(requests[i % len(requests)])
                status = await read_response(reader)
                done = time.perf_counter()
                i += conns
                if began >= measure_from and done <= deadline:
                    counted += 1
                    latencies.append(done - began)
                    if status >= 400:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(c) for c in range(conns)))
    out = latency_figures(latencies, counted, seconds)
    out["errors"] = errors
    return out


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:
        result = asyncio.run(run(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
