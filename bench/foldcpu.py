"""Client CPU per folded event of a rebuild, as ``ours.rebuild.cmd`` runs it.

``python -m bench.foldcpu [--reads redis|sqlite|pg] [--events 20000] [--runs 5] [--profile]``
writes the bench's source log (``events`` events over 1,000 products) to a SQLite file once
(kept in ``--log DIR`` if given), rebuilds the shop's product projection from it ``--warm``
times unmeasured, then ``runs`` times the way ``bicameral projections rebuild`` does with no
worker running (``runtime.rebuild.build``: a new version through 8 partition checkpoints, up
to the switch), each into fresh keys, and prints the process CPU time (user + system,
``time.process_time``) per event of each run, their median and their minimum (the steadier
figure on a busy machine). CPU per event hardly depends on how busy the machine is, where a
rate does.

For instruction counts, run it under ``valgrind --tool=callgrind`` with ``--warm 0 --runs 1``
at two sizes over logs kept with ``--log``, and divide the difference by the difference in
events (the start-up cancels out).

``--profile`` adds one more run under cProfile timed by this thread's CPU clock and prints
its top rows (``--sort``, ``--top``); cProfile inflates code made of many tiny calls, so read
it for the shape, and the plain runs for the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import tempfile
import time
import uuid
from typing import Any

from bench.cases.ours import log_path, read_store, timed_rebuild, write_log
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.ports import ReadStore

REDIS = "redis://127.0.0.1:6379/0?prefix=foldcpu_{uid}"
"""A key prefix of each run's own: runs side by side must not join one rebuild group."""


async def reads_for(p: dict[str, Any]) -> ReadStore:
    """Returns the read store of a run: Redis under its own prefix, else as the bench does."""
    if p["reads"] == "redis":
        from bicameral.readstore.redis import RedisReadStore

        store: Any = RedisReadStore(REDIS.format(uid=p["uid"]))  # a ReadStore
        return store  # type: ignore[no-any-return]
    return await read_store(p)


async def forget(reads: ReadStore) -> None:
    """Deletes every key of a run's own Redis prefix (leases, catalog, markers)."""
    from bicameral.readstore.redis import RedisReadStore

    if isinstance(reads, RedisReadStore):
        async for key in reads.redis.scan_iter(match=f"{reads.prefix}:*"):
            await reads.redis.delete(key)


async def one_run(p: dict[str, Any], prof: cProfile.Profile | None) -> float:
    """Rebuilds the projection once; returns the process CPU seconds the build took."""
    p["uid"] = uuid.uuid4().hex[:8]
    reads = await reads_for(p)
    await reads.start()
    try:
        return await timed_rebuild(p, reads, time.process_time, prof)
    finally:
        await forget(reads)
        await reads.close()


async def write(p: dict[str, Any]) -> None:
    """Writes the source log the runs read."""
    store = SqliteEventStore("inventory", log_path(p))
    await store.start()
    await write_log(store, int(p["events"]), int(p["products"]))
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.foldcpu")
    parser.add_argument("--reads", choices=["redis", "sqlite", "pg"], default="redis")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", ""))
    parser.add_argument("--log", help="a folder keeping the source log between invocations")
    parser.add_argument("--warm", type=int, default=1, help="unmeasured runs first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bicameral-foldcpu-") as tmp:
        p: dict[str, Any] = {
            "tmp": args.log or tmp,
            "events": args.events,
            "products": 1000,
            "reads": args.reads,
            "pg_url": args.pg_url,
        }
        if not os.path.exists(log_path(p)):
            asyncio.run(write(p))
        for _ in range(args.warm):  # imports, pydantic's first calls
            asyncio.run(one_run(p, None))
        per_event = []
        for _ in range(args.runs):
            spent = asyncio.run(one_run(p, None))
            per_event.append(spent / args.events * 1e6)
        figures = {
            "reads": args.reads,
            "events": args.events,
            "us_per_event": [round(x, 2) for x in per_event],
            "median": round(statistics.median(per_event), 2),
            "min": round(min(per_event), 2),
        }
        print(json.dumps(figures))
        if args.profile:
            prof = cProfile.Profile(time.thread_time)
            asyncio.run(one_run(p, prof))
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(args.sort).print_stats(args.top)
            print(buf.getvalue())


if __name__ == "__main__":
    main()
