"""The catalogue: every case the harness runs, and the table rows that compare them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Summary

__all__ = ["Case", "Row", "Target", "cases", "rows"]


@dataclass(frozen=True)
class Case:
    """One benchmark with its parameters; each run is a fresh worker process."""

    key: str
    bench: str
    params: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    setup: str | None = None


@dataclass(frozen=True)
class Target:
    """A bar from issues 6 and 14: a ratio to the ceiling or the CRUD peer, or a bound.

    ``min_ratio`` / ``max_ratio`` bound ours / the figure named by ``against`` (``ceiling``
    or ``crud``); ``max`` bounds our own value.
    """

    min_ratio: float | None = None
    max: float | None = None
    against: str = "ceiling"
    max_ratio: float | None = None

    def text(self) -> str:
        """Returns the target as the table shows it."""
        name = "CRUD" if self.against == "crud" else self.against
        if self.min_ratio is not None:
            return f"≥ {self.min_ratio:g}x {name}"
        if self.max_ratio is not None:
            return f"≤ {self.max_ratio:g}x {name}"
        return f"≤ {self.max:g}"

    def value(self, refs: Mapping[str, Summary | None]) -> float | None:
        """Returns the bar in the row's own unit (a ratio times the median it is against)."""
        if self.max is not None:
            return self.max
        ref = refs.get(self.against)
        bound = self.min_ratio if self.min_ratio is not None else self.max_ratio
        return None if ref is None or bound is None else bound * ref.median

    def met(self, value: float | None, ratios: dict[str, float | None]) -> bool | None:
        """Returns whether the figure clears the bar (None when it cannot be told)."""
        ratio = ratios.get(self.against)
        if self.min_ratio is not None:
            return None if ratio is None else ratio >= self.min_ratio
        if self.max_ratio is not None:
            return None if ratio is None else ratio <= self.max_ratio
        if self.max is not None and value is not None:
            return value <= self.max
        return None


Ref = tuple[str, str]
"""(case key, metric)."""


@dataclass(frozen=True)
class Row:
    """One line of the table: our figure beside its ceiling and its peer."""

    label: str
    unit: str
    ours: Ref
    ceiling: Ref | None = None
    peer: Ref | None = None
    target: Target | None = None
    note: str = ""
    crud: Ref | None = None
    """The CRUD app's figure (``bench/crud.py``), where it does the same thing."""


def cases(full: bool) -> list[Case]:
    """Returns every case, sized for the quick or the full suite."""
    s = 10.0 if full else 2.0
    events = 1_000_000 if full else 20_000
    peer_events = 50_000 if full else 2_000
    products = 1000
    lag_seconds = 30.0 if full else 5.0
    http = {"seconds": s, "connections": 32, "products": products}
    out = [
        Case("ceiling.sqlite.insert1", "ceiling.sqlite.insert", {"seconds": s, "rows": 1}),
        Case("ceiling.sqlite.insert100", "ceiling.sqlite.insert", {"seconds": s, "rows": 100}),
        *(
            Case(
                f"ceiling.pg.insert.c{c}",
                "ceiling.pg.insert",
                {"seconds": s, "clients": c},
                ("pg",),
            )
            for c in (1, 16, 64)
        ),
        Case("ceiling.pg.insert100", "ceiling.pg.insert_batch", {"seconds": s}, ("pg",)),
        Case("ceiling.pg.copy", "ceiling.pg.copy", {"seconds": s}, ("pg",)),
        Case("ceiling.redis.pipeline", "ceiling.redis.pipeline", {"seconds": s}, ("redis",)),
        Case("ceiling.nats.publish", "ceiling.nats.publish", {"seconds": s}, ("nats",)),
        Case("ceiling.http.hello", "http.hello", http),
    ]
    for store, clients in (("sqlite", (1, 16)), ("pg", (1, 16, 64))):
        needs = ("pg",) if store == "pg" else ()
        for c in clients:
            params = {"seconds": s, "clients": c, "products": products, "store": store}
            out.append(Case(f"ours.commands.{store}.c{c}", "ours.commands", params, needs))
            out.append(Case(f"peer.commands.{store}.c{c}", "peer.commands", params, needs))
        traced = {"seconds": s, "clients": 16, "products": products, "store": store, "tracing": 1}
        out.append(Case(f"ours.commands.{store}.c16.traced", "ours.commands", traced, needs))
    out += [
        Case(
            "ours.appends.sqlite.b1",
            "ours.appends",
            {"seconds": s, "clients": 1, "batch": 1, "store": "sqlite"},
        ),
        Case(
            "ours.appends.sqlite.b100",
            "ours.appends",
            {"seconds": s, "clients": 1, "batch": 100, "store": "sqlite"},
        ),
        *(
            Case(
                f"ours.appends.pg.c{c}",
                "ours.appends",
                {"seconds": s, "clients": c, "batch": 1, "store": "pg"},
                ("pg",),
            )
            for c in (1, 16)
        ),
    ]
    log = {"events": events, "products": products}
    for reads, needs in (("sqlite", ()), ("pg", ("pg",)), ("redis", ("redis",))):
        out.append(
            Case(
                f"ours.rebuild.{reads}", "ours.rebuild", {**log, "reads": reads}, needs, "setup.log"
            )
        )
        out.append(
            Case(
                f"ours.rebuild.cmd.{reads}",
                "ours.rebuild.cmd",
                {**log, "reads": reads},
                needs,
                "setup.log",
            )
        )
    out.append(
        Case(
            "ours.rebuild.overhead",
            "ours.rebuild.overhead",
            {**log, "seconds": s, "clients": 16},
            (),
            "setup.log",
        )
    )
    peer_log = {"events": peer_events, "products": products}
    for store, needs in (("sqlite", ()), ("pg", ("pg",))):
        out.append(
            Case(
                f"peer.rebuild.{store}",
                "peer.rebuild",
                {**peer_log, "store": store},
                needs,
                "peer.setup.log",
            )
        )
    out += [
        Case("ours.relay.nats", "ours.relay", log, ("nats",), "setup.log"),
        Case(
            "ours.lag",
            "ours.lag",
            {"rate": 1000, "seconds": lag_seconds, "products": products},
            ("pg", "redis", "nats"),
        ),
        Case("ours.http.commands", "http.commands", http),
        Case("ours.http.queries", "http.queries", http),
        Case(
            "ours.http.commands.api-only",
            "http.commands",
            {**http, "roles": ["command-api", "query-api"]},
        ),
    ]
    out.append(
        Case(
            "ours.snapshots.sqlite",
            "ours.snapshots",
            {"seconds": s, "clients": 16, "short": 10, "long": 10_000, "store": "sqlite"},
        )
    )
    pg_http = {**http, "backends": "pg"}
    out += [
        Case("ours.http.pg.commands", "http.commands", pg_http, ("pg", "redis", "nats")),
        Case("ours.http.pg.queries", "http.queries", pg_http, ("pg", "redis", "nats")),
        Case("crud.http.commands", "crud.commands", http, ("pg",)),
        Case("crud.http.queries", "crud.queries", http, ("pg",)),
        Case("ours.http.scaleout", "http.scaleout", http, ("pg", "redis", "nats")),
    ]
    return out


def rows() -> list[Row]:
    """Returns the table's rows, in the order of issue 6."""
    r = "rate"
    out: list[Row] = []
    for c in (1, 16, 64):
        out.append(
            Row(
                f"Commands/s, PostgreSQL, {c} clients",
                "commands/s",
                (f"ours.commands.pg.c{c}", r),
                (f"ceiling.pg.insert.c{c}", r),
                (f"peer.commands.pg.c{c}", r),
                Target(min_ratio=1.0) if c == 16 else None,
                "ceiling: one-row INSERT transactions at the same concurrency",
            )
        )
    for c in (1, 16):
        out.append(
            Row(
                f"Commands/s, SQLite, {c} clients",
                "commands/s",
                (f"ours.commands.sqlite.c{c}", r),
                ("ceiling.sqlite.insert1", r),
                (f"peer.commands.sqlite.c{c}", r),
                Target(min_ratio=0.5),
                "ceiling: one-row INSERT transactions, WAL, synchronous=FULL",
            )
        )
    for store, label in (("pg", "PostgreSQL"), ("sqlite", "SQLite")):
        out.append(
            Row(
                f"Commands/s, {label}, 16 clients, tracing on",
                "commands/s",
                (f"ours.commands.{store}.c16.traced", r),
                (f"ours.commands.{store}.c16", r),
                None,
                None,
                "ceiling: the same with tracing off (no OTEL_* set)",
            )
        )
    out += [
        Row(
            "SQLite appends/s, one event per transaction",
            "events/s",
            ("ours.appends.sqlite.b1", r),
            ("ceiling.sqlite.insert1", r),
        ),
        Row(
            "SQLite appends/s, 100 events per transaction",
            "events/s",
            ("ours.appends.sqlite.b100", r),
            ("ceiling.sqlite.insert100", r),
        ),
        Row(
            "PostgreSQL appends/s, 1 client",
            "events/s",
            ("ours.appends.pg.c1", r),
            ("ceiling.pg.insert.c1", r),
        ),
        Row(
            "PostgreSQL appends/s, 16 clients",
            "events/s",
            ("ours.appends.pg.c16", r),
            ("ceiling.pg.insert.c16", r),
        ),
        Row(
            "Projection rebuild into SQLite",
            "events/s",
            ("ours.rebuild.sqlite", r),
            ("ceiling.sqlite.insert100", r),
            ("peer.rebuild.sqlite", r),
        ),
        Row(
            "Projection rebuild into PostgreSQL",
            "events/s",
            ("ours.rebuild.pg", r),
            ("ceiling.pg.insert100", r),
            ("peer.rebuild.pg", r),
            Target(min_ratio=0.25),
            "ceiling: 100-row INSERT transactions",
        ),
        Row(
            "Projection rebuild into Redis",
            "events/s",
            ("ours.rebuild.redis", r),
            ("ceiling.redis.pipeline", r),
            None,
            Target(min_ratio=0.1),
            "ceiling: pipelined SETs; the peer has no Redis support",
        ),
        Row(
            "Rebuild beside the live version (projections rebuild) into SQLite",
            "events/s",
            ("ours.rebuild.cmd.sqlite", r),
            ("ceiling.sqlite.insert100", r),
            None,
            None,
            "8 partition checkpoints, up to the switch",
        ),
        Row(
            "Rebuild beside the live version (projections rebuild) into PostgreSQL",
            "events/s",
            ("ours.rebuild.cmd.pg", r),
            ("ceiling.pg.insert100", r),
            None,
            None,
            "8 partition checkpoints, up to the switch",
        ),
        Row(
            "Rebuild beside the live version (projections rebuild) into Redis",
            "events/s",
            ("ours.rebuild.cmd.redis", r),
            ("ceiling.redis.pipeline", r),
            None,
            None,
            "8 partition checkpoints, up to the switch",
        ),
        Row(
            "SQLite commands/s (16 clients) while rebuilds run in the process",
            "cmd/s",
            ("ours.rebuild.overhead", r),
            ("ours.rebuild.overhead", "plain"),
            None,
            None,
            "ceiling: the same commands with no rebuild running",
        ),
        Row(
            "Projector peak RSS, rebuild into SQLite",
            "MB",
            ("ours.rebuild.sqlite", "peak_rss_mb"),
            None,
            ("peer.rebuild.sqlite", "peak_rss_mb"),
            Target(max=200),
        ),
        Row(
            "Projector peak RSS, rebuild into PostgreSQL",
            "MB",
            ("ours.rebuild.pg", "peak_rss_mb"),
            None,
            ("peer.rebuild.pg", "peak_rss_mb"),
            Target(max=200),
        ),
        Row(
            "Projector peak RSS, rebuild into Redis",
            "MB",
            ("ours.rebuild.redis", "peak_rss_mb"),
            None,
            None,
            Target(max=200),
        ),
        Row(
            "Relay through NATS JetStream",
            "events/s",
            ("ours.relay.nats", r),
            ("ceiling.nats.publish", r),
            None,
            None,
            "ceiling: acknowledged publishes, 256 in flight",
        ),
        Row(
            "End-to-end lag p50 at 1,000 commands/s",
            "ms",
            ("ours.lag", "p50_ms"),
            None,
            None,
            Target(max=10),
        ),
        Row(
            "End-to-end lag p99 at 1,000 commands/s",
            "ms",
            ("ours.lag", "p99_ms"),
            None,
            None,
            Target(max=50),
        ),
        Row("End-to-end lag p99.9 at 1,000 commands/s", "ms", ("ours.lag", "p999_ms")),
        Row(
            "HTTP commands/s",
            "req/s",
            ("ours.http.commands", r),
            ("ceiling.http.hello", r),
            None,
            Target(min_ratio=0.3),
            "ceiling: bare Starlette hello-world, same uvicorn set-up",
        ),
        Row(
            "HTTP commands/s, API roles only (serve --role command-api --role query-api)",
            "req/s",
            ("ours.http.commands.api-only", r),
            ("ceiling.http.hello", r),
        ),
        Row(
            "HTTP queries/s",
            "req/s",
            ("ours.http.queries", r),
            ("ceiling.http.hello", r),
            None,
            Target(min_ratio=0.5),
        ),
        Row(
            "HTTP commands p50 at max rate",
            "ms",
            ("ours.http.commands", "p50_ms"),
            ("ceiling.http.hello", "p50_ms"),
        ),
        Row(
            "HTTP commands p99 at max rate",
            "ms",
            ("ours.http.commands", "p99_ms"),
            ("ceiling.http.hello", "p99_ms"),
        ),
        Row(
            "HTTP commands p99 at half max rate",
            "ms",
            ("ours.http.commands", "half_p99_ms"),
            ("ceiling.http.hello", "half_p99_ms"),
            None,
            Target(max=20),
        ),
        Row(
            "HTTP queries p50 at max rate",
            "ms",
            ("ours.http.queries", "p50_ms"),
            ("ceiling.http.hello", "p50_ms"),
        ),
        Row(
            "HTTP queries p99 at max rate",
            "ms",
            ("ours.http.queries", "p99_ms"),
            ("ceiling.http.hello", "p99_ms"),
        ),
        Row(
            "HTTP queries p99 at half max rate",
            "ms",
            ("ours.http.queries", "half_p99_ms"),
            ("ceiling.http.hello", "half_p99_ms"),
            None,
            Target(max=20),
        ),
    ]
    out += crud_rows()
    out += [
        Row(
            "CPU per command on a 10,000-event stream over a 10-event one (cache off)",
            "x",
            ("ours.snapshots.sqlite", "cpu_ratio"),
            None,
            None,
            Target(max=1.5),
            "SQLite, 16 clients; Product takes a snapshot every 100 events",
        ),
        Row(
            "Wall time per command, 10,000-event over 10-event stream (cache off)",
            "x",
            ("ours.snapshots.sqlite", "cost_ratio"),
            None,
            None,
            Target(max=1.5),
        ),
        Row(
            "Wall time per command, 10,000-event over 10-event stream, no snapshots",
            "x",
            ("ours.snapshots.sqlite", "cost_ratio_nosnap"),
        ),
    ]
    out += [
        Row(
            "HTTP commands/s behind nginx, 1 command-api (PostgreSQL)",
            "req/s",
            ("ours.http.scaleout", "rate_1"),
        ),
        Row(
            "HTTP commands/s behind nginx, 2 command-api (PostgreSQL)",
            "req/s",
            ("ours.http.scaleout", "rate_2"),
        ),
        Row(
            "Scale-out: 2 / 1 command-api behind nginx",
            "x",
            ("ours.http.scaleout", "ratio"),
            None,
            None,
            None,
            "2 cores shared by nginx, both copies, PostgreSQL and the load generator",
        ),
    ]
    return out


def crud_rows() -> list[Row]:
    """Returns the rows of issue 14: bicameral on PostgreSQL, Redis and NATS, beside CRUD."""
    cmd, qry = "ours.http.pg.commands", "ours.http.pg.queries"
    crud_cmd, crud_qry = "crud.http.commands", "crud.http.queries"
    hello = "ceiling.http.hello"
    return [
        Row(
            "HTTP commands/s, PostgreSQL events + Redis reads + NATS",
            "req/s",
            (cmd, "rate"),
            (hello, "rate"),
            target=Target(min_ratio=1.0, against="crud"),
            note="one bicameral up process; CRUD: UPDATE ... RETURNING through asyncpg",
            crud=(crud_cmd, "rate"),
        ),
        Row(
            "HTTP queries/s, Redis reads",
            "req/s",
            (qry, "rate"),
            (hello, "rate"),
            target=Target(min_ratio=1.5, against="crud"),
            note="CRUD: SELECT by key through asyncpg",
            crud=(crud_qry, "rate"),
        ),
        Row(
            "HTTP commands p99 at half max rate, PostgreSQL",
            "ms",
            (cmd, "half_p99_ms"),
            (hello, "half_p99_ms"),
            target=Target(max_ratio=1.0, against="crud"),
            crud=(crud_cmd, "half_p99_ms"),
        ),
        Row(
            "HTTP queries p99 at half max rate, Redis",
            "ms",
            (qry, "half_p99_ms"),
            (hello, "half_p99_ms"),
            target=Target(max_ratio=1.0, against="crud"),
            crud=(crud_qry, "half_p99_ms"),
        ),
    ]
