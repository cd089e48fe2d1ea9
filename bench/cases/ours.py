"""bicameral's own figures: commands, appends, projection rebuilds, relay and lag.

Backends still being built elsewhere (PostgreSQL, Redis, NATS adapters) are reached through
the ports only; while a module is missing the benchmark reports it as not available.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.drive import run_clients
from bench.registry import bench as register
from bench.registry import need_module
from bench.resources import NATS_URL, REDIS_URL
from bench.stats import percentile
from bicameral import MessageContext
from bicameral.bus import CommandBus
from bicameral.envelope import NewEvent
from bicameral.eventstore.sqlite import SqliteEventStore
from bicameral.parking import Park
from bicameral.ports import NO_STREAM, Changes, EventStore, ReadStore, StreamAppend
from bicameral.projection import Projection
from bicameral.readstore.sqlite import SqliteReadStore
from bicameral.workers.feeds import LogFeed, TransportFeed
from bicameral.workers.projector import Projector
from bicameral.workers.relay import Relay
from shop.inventory.messages import (
    ProductRegistered,
    ReceiveStock,
    RegisterProduct,
    StockReceived,
)
from shop.inventory.projections import products as shop_products
from shop.inventory.service import inventory

CTX = MessageContext()


def pg_event_store(service: str, url: str) -> EventStore:
    """Returns bicameral's PostgreSQL event store, or raises Unavailable."""
    cls = need_module("bicameral.eventstore.postgres", "PostgresEventStore")
    return cls(service, url)  # type: ignore[no-any-return]


def pg_read_store(url: str) -> ReadStore:
    """Returns bicameral's PostgreSQL read store, or raises Unavailable."""
    cls = need_module("bicameral.readstore.postgres", "PostgresReadStore")
    return cls(url)  # type: ignore[no-any-return]


def redis_read_store(url: str) -> ReadStore:
    """Returns bicameral's Redis read store, or raises Unavailable."""
    cls = need_module("bicameral.readstore.redis", "RedisReadStore")
    return cls(url)  # type: ignore[no-any-return]


def nats_transport(url: str) -> Any:
    """Returns bicameral's NATS transport, or raises Unavailable."""
    cls = need_module("bicameral.transport.nats", "NatsTransport")
    return cls(url)


def event_store(p: dict[str, Any], service: str = "inventory") -> EventStore:
    """Returns the event store a case names in ``p["store"]``: sqlite or pg."""
    if p["store"] == "pg":
        return pg_event_store(service, p["pg_url"])
    return SqliteEventStore(service, os.path.join(p["tmp"], "events.db"))


def products_projection(uid: str) -> Projection:
    """Returns the shop's product projection under a name unique to this run."""
    return shop_products.renamed(f"products_{uid}")


def sku(client: int, i: int, clients: int, products: int) -> str:
    """Returns the sku client ``client`` uses for its ``i``-th command (clients never share)."""
    per_client = max(1, products // clients)
    return f"p{client + clients * (i % per_client)}"


async def register_products(bus: CommandBus, products: int) -> None:
    """Registers products p0..p{products-1}, 64 at a time."""
    for start in range(0, products, 64):
        await asyncio.gather(
            *(
                bus.dispatch(
                    RegisterProduct(sku=f"p{n}", name=f"product {n}", price_cents=100), CTX
                )
                for n in range(start, min(products, start + 64))
            )
        )


def trace_with_sdk() -> None:
    """Turns bicameral's tracing on with the SDK as ``OTEL_*`` would: every span sampled,
    batched, and encoded as OTLP protobuf by the exporter's own encoder (the bytes are dropped:
    the collector is another process's cost)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from bicameral import tracing

    class Encoded(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Encoded()))
    tracing.use(provider)


@register("ours.commands")
async def commands(p: dict[str, Any]) -> dict[str, float]:
    """ReceiveStock through the CommandBus: each loads a Product and appends one event; with
    ``tracing``, each command also makes its spans (command, append)."""
    store = event_store(p)
    await store.start()
    bus = CommandBus(inventory, store)
    if p.get("tracing"):
        trace_with_sdk()
    clients, products = int(p["clients"]), int(p["products"])
    try:
        await register_products(bus, products)

        async def op(c: int, i: int) -> None:
            await bus.dispatch(ReceiveStock(sku=sku(c, i, clients, products), quantity=1), CTX)

        return await run_clients(clients, op, p["seconds"])
    finally:
        await store.close()


async def write_streams(store: EventStore, first: int, streams: int, length: int) -> None:
    """Writes products p{first}.. as streams of ``length`` events: registered, then received."""
    meta = CTX.event_metadata()
    for n in range(first, first + streams):
        sku_n = f"p{n}"
        events = [NewEvent.of(ProductRegistered(sku=sku_n, name=sku_n, price_cents=1), meta)]
        received = NewEvent.of(StockReceived(sku=sku_n, quantity=1), meta)
        version = 0
        while version < length:
            size = min(1000, length - version) - len(events)
            events += [NewEvent(received.type, received.data, meta) for _ in range(size)]
            await store.append([StreamAppend(f"product-{sku_n}", version, events)])
            version += len(events)
            events = []


@register("ours.snapshots")
async def snapshots(p: dict[str, Any]) -> dict[str, float]:
    """ReceiveStock with the aggregate cache off, on streams of ``short`` and ``long`` events.

    Each client has its own product; the long streams load from a snapshot (Product takes one
    every 100 events) plus the events after it. The cost of a command on a long stream over
    one on a short stream: ``cpu_ratio`` in CPU time of this process (event loop and SQLite
    writer) per command, ``cost_ratio`` in wall time (the inverse ratio of the rates). The
    long streams are also driven with snapshots off, for comparison.
    """
    store = event_store(p)
    await store.start()
    clients, short, long = int(p["clients"]), int(p["short"]), int(p["long"])
    await write_streams(store, 0, clients, short)
    await write_streams(store, clients, clients, long)
    out: dict[str, float] = {}
    try:
        for name, first, use_snapshots in (
            ("short", 0, True),
            ("long", clients, True),
            ("long_nosnap", clients, False),
        ):
            bus = CommandBus(inventory, store, cache_size=0, snapshots=use_snapshots)
            calls = [0]

            async def op(
                c: int, i: int, bus: CommandBus = bus, first: int = first, calls: list[int] = calls
            ) -> None:
                await bus.dispatch(ReceiveStock(sku=f"p{first + c}", quantity=1), CTX)
                calls[0] += 1

            await asyncio.gather(*(op(c, 0) for c in range(clients)))  # takes the snapshots
            calls[0] = 0
            cpu = time.process_time()
            if use_snapshots:
                rate = (await run_clients(clients, op, p["seconds"]))["rate"]
            else:  # a command replays the whole stream: time two rounds instead
                started = time.perf_counter()
                for i in (1, 2):
                    await asyncio.gather(*(op(c, i) for c in range(clients)))
                rate = calls[0] / (time.perf_counter() - started)
            out[f"rate_{name}"] = rate
            out[f"cpu_ms_{name}"] = (time.process_time() - cpu) * 1000 / max(1, calls[0])
        out["rate"] = out["rate_long"]
        out["cost_ratio"] = out["rate_short"] / out["rate_long"]
        out["cost_ratio_nosnap"] = out["rate_short"] / out["rate_long_nosnap"]
        out["cpu_ratio"] = out["cpu_ms_long"] / out["cpu_ms_short"]
        return out
    finally:
        await store.close()


def new_events(n: int) -> list[NewEvent]:
    """Returns ``n`` StockReceived events with typical metadata, each with its own id.

    Built directly (not through pydantic), so the append figures measure the store.
    """
    meta = CTX.event_metadata()
    kind = StockReceived.type_name
    return [NewEvent(kind, {"sku": "p1", "quantity": 1}, meta) for _ in range(n)]


@register("ours.appends")
async def appends(p: dict[str, Any]) -> dict[str, float]:
    """Appends of ``batch`` events to a new stream each, from ``clients`` tasks; events/s."""
    store = event_store(p)
    await store.start()
    clients, batch = int(p["clients"]), int(p["batch"])
    try:

        async def op(c: int, i: int) -> None:
            await store.append([StreamAppend(f"s-{c}-{i}", NO_STREAM, new_events(batch))])

        return await run_clients(clients, op, p["seconds"], per_op=batch)
    finally:
        await store.close()


async def write_log(store: EventStore, events: int, products: int) -> None:
    """Appends ``events`` events: each product registered, then StockReceived round-robin."""
    meta = CTX.event_metadata()
    chunk = min(products, 1000)
    for start in range(0, products, chunk):
        await store.append(
            [
                StreamAppend(
                    f"product-p{n}",
                    NO_STREAM,
                    [
                        NewEvent.of(
                            ProductRegistered(sku=f"p{n}", name=f"product {n}", price_cents=1),
                            meta,
                        )
                    ],
                )
                for n in range(start, min(products, start + chunk))
            ]
        )
    left = events - products
    n = 0
    while left > 0:
        size = min(left, 1000)
        batch = []
        for _ in range(size):
            batch.append(
                StreamAppend(
                    f"product-p{n % products}",
                    None,
                    [NewEvent.of(StockReceived(sku=f"p{n % products}", quantity=1), meta)],
                )
            )
            n += 1
        await store.append(batch)
        left -= size


def log_path(p: dict[str, Any]) -> str:
    """Returns the SQLite file of a case's pre-written source log."""
    return os.path.join(p["tmp"], "source-log.db")


@register("setup.log")
async def setup_log(p: dict[str, Any]) -> dict[str, float]:
    """Writes the source log a rebuild or relay case reads (in its own process)."""
    store = SqliteEventStore(f"bench{p['uid']}", log_path(p))
    await store.start()
    started = time.perf_counter()
    await write_log(store, int(p["events"]), int(p["products"]))
    await store.close()
    return {"rate": int(p["events"]) / (time.perf_counter() - started)}


async def read_store(p: dict[str, Any]) -> ReadStore:
    """Returns the read store a case names in ``p["reads"]``: sqlite, pg or redis."""
    kind = p["reads"]
    if kind == "pg":
        return pg_read_store(p["pg_url"])
    if kind == "redis":
        return redis_read_store(REDIS_URL)
    return SqliteReadStore(os.path.join(p["tmp"], "reads.db"))


@register("ours.rebuild")
async def rebuild(p: dict[str, Any]) -> dict[str, float]:
    """Folds the pre-written log into a fresh read model with Projector.catch_up; events/s."""
    source = SqliteEventStore(f"bench{p['uid']}", log_path(p))
    await source.start()
    reads = await read_store(p)
    await reads.start()
    proj = products_projection(p["uid"])
    projector = Projector(proj, LogFeed(source.service, source), reads, batch_size=1000)
    try:
        started = time.perf_counter()
        total = await projector.catch_up()
        seconds = time.perf_counter() - started
        if total != int(p["events"]):
            raise RuntimeError(f"folded {total} events of {p['events']}")
        return {"rate": total / seconds}
    finally:
        await reads.drop([proj.table(c) for c in proj.collections], [projector.checkpoint_name])
        await reads.close()
        await source.close()


def rebuild_runtime(p: dict[str, Any], source: EventStore, reads: ReadStore) -> Any:
    """Returns the inventory's runtime over the pre-written log, folding a run-unique
    products projection into ``reads`` with the default 8 partitions."""
    from bicameral import Service
    from bicameral.runtime.node import ServiceRuntime
    from bicameral.transport.memory import MemoryTransport

    service = Service("inventory")
    service.projection(products_projection(p["uid"]))
    return ServiceRuntime(service, source, reads, MemoryTransport(), frozenset(), partitions=8)


async def drop_versions(reads: ReadStore, proj: Projection) -> None:
    """Drops every stored version of ``proj`` (tables, checkpoints, markers)."""
    names = [c for c in await reads.checkpoints() if c.startswith(proj.name)]
    tables = [proj.table(c, n) for c in proj.collections for n in range(1, 4)]
    await reads.drop(tables, names)


async def timed_rebuild(
    p: dict[str, Any],
    reads: ReadStore,
    clock: Callable[[], float] = time.perf_counter,
    profile: cProfile.Profile | None = None,
) -> float:
    """Folds the pre-written log into ``reads`` (started) as ``bicameral projections rebuild``
    does with no worker running: a new version through 8 partition checkpoints, up to the
    switch. Returns the ``clock`` seconds the build took (profiled by ``profile``, if given);
    drops the versions afterwards and leaves ``reads`` open."""
    from bicameral import versions
    from bicameral.runtime.rebuild import build

    source = SqliteEventStore("inventory", log_path(p))
    await source.start()
    rt = rebuild_runtime(p, source, reads)
    proj = rt.service.projections[0]
    try:
        await versions.deploy(reads, proj)
        version, _ = await versions.start_rebuild(reads, proj)
        started = clock()
        if profile is not None:
            profile.enable()
        try:
            done = await build(rt, proj, version.number, lambda status: None)
        finally:
            if profile is not None:
                profile.disable()
        seconds = clock() - started
        if done.version.state != versions.State.LIVE or done.progress.done != int(p["events"]):
            raise RuntimeError(f"the rebuild ended as {done}")
        return seconds
    finally:
        await drop_versions(reads, proj)
        await source.close()


@register("ours.rebuild.cmd")
async def rebuild_cmd(p: dict[str, Any]) -> dict[str, float]:
    """Folds the pre-written log as ``bicameral projections rebuild`` does with no worker
    running (``timed_rebuild``); events/s."""
    reads = await read_store(p)
    await reads.start()
    try:
        seconds = await timed_rebuild(p, reads)
    finally:
        await reads.close()
    return {"rate": int(p["events"]) / seconds}


@register("ours.rebuild.overhead")
async def rebuild_overhead(p: dict[str, Any]) -> dict[str, float]:
    """Commands/s through the CommandBus (SQLite) while rebuilds of the pre-written log run in
    the same process, as in ``bicameral up``, and without (the mean of a window before and
    one after); both rates."""
    from bicameral import versions
    from bicameral.runtime.rebuild import build

    store = event_store({**p, "store": "sqlite"})
    await store.start()
    source = SqliteEventStore("inventory", log_path(p))
    await source.start()
    reads = SqliteReadStore(os.path.join(p["tmp"], "reads.db"))
    await reads.start()
    rt = rebuild_runtime(p, source, reads)
    proj = rt.service.projections[0]
    bus = CommandBus(inventory, store)
    clients, products = int(p["clients"]), int(p["products"])
    try:
        await register_products(bus, products)

        async def op(c: int, i: int) -> None:
            await bus.dispatch(ReceiveStock(sku=sku(c, i, clients, products), quantity=1), CTX)

        before = await run_clients(clients, op, p["seconds"])
        stop = asyncio.Event()
        rebuilt = 0

        async def rebuilding() -> None:
            nonlocal rebuilt
            await versions.deploy(reads, proj)
            while not stop.is_set():
                version, _ = await versions.start_rebuild(reads, proj)
                await build(rt, proj, version.number, lambda status: None)
                await versions.drop_retired(reads, proj)
                rebuilt += 1

        task = asyncio.create_task(rebuilding())
        try:
            during = await run_clients(clients, op, p["seconds"])
        finally:
            stop.set()
            await task
        after = await run_clients(clients, op, p["seconds"])
        plain = (before["rate"] + after["rate"]) / 2  # around it: the shared machine drifts
        return {
            "rate": during["rate"],
            "plain": plain,
            "overhead_pct": 100.0 * (1 - during["rate"] / plain),
            "rebuilds": float(rebuilt),
        }
    finally:
        await drop_versions(reads, proj)
        await reads.close()
        await source.close()
        await store.close()


@register("ours.relay")
async def relay(p: dict[str, Any]) -> dict[str, float]:
    """Publishes the pre-written log through the NATS transport with the Relay; events/s."""
    transport = nats_transport(NATS_URL)
    source = SqliteEventStore(f"bench{p['uid']}", log_path(p))
    await source.start()
    await transport.start()
    try:
        worker = Relay(source, transport, batch_size=1000)
        started = time.perf_counter()
        total = 0
        while count := await worker.step(timeout=0.0):
            total += count
        seconds = time.perf_counter() - started
        return {"rate": total / seconds}
    finally:
        await transport.close()
        await source.close()


class TimedReadStore:
    """A ReadStore that notes when each position became visible (commit returned)."""

    def __init__(self, inner: ReadStore, visible: dict[int, float]) -> None:
        self._inner = inner
        self._visible = visible

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        ok = await self._inner.commit(checkpoint, expected, position, changes, parked)
        if ok:
            now = time.perf_counter()
            for pos in range(expected + 1, position + 1):
                self._visible[pos] = now
        return ok


def lag_figures(committed: dict[int, float], visible: dict[int, float]) -> dict[str, float]:
    """Returns p50/p99/p99.9 of visible - committed (ms) over committed positions."""
    lags = sorted(visible[pos] - t for pos, t in committed.items() if pos in visible)
    if len(lags) < len(committed):
        raise RuntimeError(f"{len(committed) - len(lags)} commands never became visible")
    return {
        "p50_ms": percentile(lags, 50) * 1000,
        "p99_ms": percentile(lags, 99) * 1000,
        "p999_ms": percentile(lags, 99.9) * 1000,
        "rate": len(lags),
    }


@register("ours.lag")
async def lag(p: dict[str, Any]) -> dict[str, float]:
    """Commands at a fixed rate on PostgreSQL; lag until another service's read model shows them.

    Path: CommandBus -> PostgresEventStore -> Relay -> NATS -> TransportFeed -> Projector ->
    PostgresReadStore of the reading service; all in this process, on one event loop.
    """
    transport = nats_transport(NATS_URL)
    source_name = f"bench{p['uid']}"
    store = pg_event_store(source_name, p["pg_url"])
    visible: dict[int, float] = {}
    reads = TimedReadStore(pg_read_store(p["pg_url"]), visible)
    proj = Projection(f"lag_{p['uid']}", collections={"stock": []})

    @proj.on(StockReceived, source=source_name)
    def received(event: StockReceived, view: Any) -> None:
        view.put("stock", event.sku, {"sku": event.sku})

    for backend in (store, transport, reads):
        await backend.start()
    bus = CommandBus(inventory, store)
    products, rate, seconds = int(p["products"]), int(p["rate"]), float(p["seconds"])
    stop = asyncio.Event()
    relay_task = asyncio.create_task(Relay(store, transport).run(stop))
    feed = TransportFeed(source_name, f"lag{p['uid']}", transport)
    projector = Projector(proj, feed, reads)
    projector_task = asyncio.create_task(projector.run(stop))
    committed: dict[int, float] = {}
    try:
        await register_products(bus, products)
        tick, sent, pending = 0.01, 0, set()
        started = time.perf_counter()

        async def one(n: int) -> None:
            cmd = ReceiveStock(sku=f"p{n % products}", quantity=1)
            result = await bus.dispatch(cmd, CTX)
            committed[result.position] = time.perf_counter()

        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                task = asyncio.create_task(one(sent))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(tick)
        await asyncio.gather(*pending)
        deadline = time.perf_counter() + 30
        last = max(committed)
        while last not in visible and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        out = lag_figures(committed, visible)
        out["rate"] = len(committed) / seconds
        return out
    finally:
        stop.set()
        await asyncio.gather(relay_task, projector_task, return_exceptions=True)
        await feed.close()
        for backend in (reads, transport, store):
            await backend.close()
