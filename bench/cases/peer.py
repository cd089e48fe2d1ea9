"""The peer: the ``eventsourcing`` library doing the same domain work on the same servers.

Commands: an application loads a Product aggregate and saves one new event per call (no
aggregate cache, like bicameral). Projections: its ``ProjectionRunner`` folds the same event
stream into a products table beside a tracking record, in one transaction per event.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import singledispatchmethod
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from bench.drive import run_threads
from bench.registry import Unavailable, bench

try:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.persistence import Tracking
    from eventsourcing.postgres import PostgresTrackingRecorder
    from eventsourcing.projection import Projection, ProjectionRunner
    from eventsourcing.sqlite import SQLiteFactory, SQLiteTrackingRecorder
    from psycopg.sql import SQL
except ImportError as exc:  # pragma: no cover - the bench extra is missing
    MISSING: str | None = f"eventsourcing is not installed ({exc}); pip install '.[bench]'"
else:
    MISSING = None

    class EsProduct(Aggregate):
        """The peer's Product: registered once, then stock received."""

        @staticmethod
        def create_id(sku: str, **_: Any) -> UUID:
            return uuid5(NAMESPACE_URL, f"/products/{sku}")

        @event("Registered")
        def __init__(self, sku: str, name: str, price_cents: int) -> None:
            self.sku = sku
            self.name = name
            self.price_cents = price_cents
            self.on_hand = 0

        @event("StockReceived")
        def receive(self, quantity: int) -> None:
            self.on_hand += quantity

    class EsInventory(Application[UUID]):
        """The peer's inventory application."""

        name = "Inventory"

        def register(self, sku: str) -> None:
            self.save(EsProduct(sku=sku, name=f"product {sku}", price_cents=100))

        def receive(self, sku: str, quantity: int) -> None:
            product: EsProduct = self.repository.get(EsProduct.create_id(sku))
            product.receive(quantity)
            self.save(product)

    class SqliteProductsView(SQLiteTrackingRecorder):
        """The products read model in SQLite, written with its tracking record."""

        def construct_create_table_statements(self) -> list[str]:
            return [
                *super().construct_create_table_statements(),
                "CREATE TABLE IF NOT EXISTS products "
                "(sku TEXT PRIMARY KEY, name TEXT, on_hand INTEGER NOT NULL)",
            ]

        def registered(self, sku: str, name: str, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as c:
                c.execute(
                    "INSERT OR REPLACE INTO products VALUES (?, ?, 0)",
                    (sku, name),
                )
                self._insert_tracking(c, tracking)

        def received(self, sku: str, quantity: int, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as c:
                c.execute(
                    "UPDATE products SET on_hand = on_hand + ? WHERE sku = ?", (quantity, sku)
                )
                self._insert_tracking(c, tracking)

    class PostgresProductsView(PostgresTrackingRecorder):
        """The products read model in PostgreSQL, written with its tracking record."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.sql_create_statements.append(
                SQL(  # type: ignore[arg-type]
                    "CREATE TABLE IF NOT EXISTS products "
                    "(sku TEXT PRIMARY KEY, name TEXT, on_hand INTEGER NOT NULL)"
                )
            )

        def registered(self, sku: str, name: str, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as c:
                c.execute(
                    "INSERT INTO products VALUES (%s, %s, 0) ON CONFLICT (sku) DO UPDATE "
                    "SET name = EXCLUDED.name",
                    (sku, name),
                )
                self._insert_tracking(c, tracking)

        def received(self, sku: str, quantity: int, tracking: Tracking) -> None:
            with self.datastore.transaction(commit=True) as c:
                c.execute(
                    "UPDATE products SET on_hand = on_hand + %s WHERE sku = %s", (quantity, sku)
                )
                self._insert_tracking(c, tracking)

    class ProductsProjection(Projection[Any]):
        """Folds Registered and StockReceived into the products view."""

        name = "products"

        @singledispatchmethod
        def process_event(self, domain_event: Any, tracking: Tracking) -> None:
            self.view.insert_tracking(tracking)

        @process_event.register
        def _(
            self,
            domain_event: EsProduct.Registered,  # type: ignore[name-defined]
            tracking: Tracking,
        ) -> None:
            self.view.registered(domain_event.sku, domain_event.name, tracking)

        @process_event.register
        def _(
            self,
            domain_event: EsProduct.StockReceived,  # type: ignore[name-defined]
            tracking: Tracking,
        ) -> None:
            sku = SKUS[domain_event.originator_id]
            self.view.received(sku, domain_event.quantity, tracking)


SKUS: dict[UUID, str] = {}
"""Product id -> sku, filled when the log is written (the StockReceived event has no sku)."""


def env_for(p: dict[str, Any], clients: int = 1) -> dict[str, str]:
    """Returns the eventsourcing environment for ``p["store"]`` (sqlite or pg)."""
    if MISSING:
        raise Unavailable(MISSING)
    if p["store"] == "pg":
        url = urlsplit(p["pg_url"])
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/"),
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": url.username or "postgres",
            "POSTGRES_PASSWORD": "postgres",
            "POSTGRES_POOL_SIZE": str(max(5, clients)),
            "POSTGRES_MAX_OVERFLOW": "0",
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": os.path.join(p["tmp"], "peer.db"),
    }


def _register_all(app: Any, products: int) -> None:
    chunk = 100
    for start in range(0, products, chunk):
        app.save(
            *(
                EsProduct(sku=f"p{n}", name=f"product {n}", price_cents=100)
                for n in range(start, min(products, start + chunk))
            )
        )


@bench("peer.commands")
async def commands(p: dict[str, Any]) -> dict[str, float]:
    """The peer's commands/s: load a Product, record StockReceived, save; ``clients`` threads."""
    clients, products = int(p["clients"]), int(p["products"])
    app = EsInventory(env=env_for(p, clients))
    try:
        await asyncio.to_thread(_register_all, app, products)
        per_client = max(1, products // clients)

        def op(c: int, i: int) -> None:
            app.receive(f"p{c + clients * (i % per_client)}", 1)

        return await asyncio.to_thread(run_threads, clients, op, p["seconds"])
    finally:
        app.close()


def write_peer_log(app: Any, events: int, products: int) -> None:
    """Writes ``events`` events: products registered, then StockReceived round-robin."""
    chunk = 100
    left = events
    for start in range(0, products, chunk):
        batch = [
            EsProduct(sku=f"p{n}", name=f"product {n}", price_cents=1)
            for n in range(start, min(products, start + chunk))
        ]
        app.save(*batch)
        left -= len(batch)
    aggregates = {
        f"p{n}": app.repository.get(EsProduct.create_id(f"p{n}")) for n in range(products)
    }
    n = 0
    while left > 0:
        size = min(left, 1000)
        touched: dict[str, Any] = {}
        for _ in range(size):
            key = f"p{n % products}"
            aggregates[key].receive(1)
            touched[key] = aggregates[key]
            n += 1
        app.save(*touched.values())
        left -= size


@bench("peer.setup.log")
async def setup_log(p: dict[str, Any]) -> dict[str, float]:
    """Writes the peer's source log for a projection case (in its own process)."""
    app = EsInventory(env=env_for(p))
    started = time.perf_counter()
    await asyncio.to_thread(write_peer_log, app, int(p["events"]), int(p["products"]))
    app.close()
    return {"rate": int(p["events"]) / (time.perf_counter() - started)}


@bench("peer.rebuild")
async def rebuild(p: dict[str, Any]) -> dict[str, float]:
    """The peer's ProjectionRunner folding the pre-written log into its view; events/s."""
    env = env_for(p)
    for n in range(int(p["products"])):
        SKUS[EsProduct.create_id(f"p{n}")] = f"p{n}"
    app = EsInventory(env=env)
    head = app.recorder.max_notification_id()
    if p["store"] == "sqlite":
        try:
            return {"rate": int(p["events"]) / await asyncio.to_thread(pull_and_fold, app, env)}
        finally:
            app.close()
    app.close()

    def fold() -> float:
        started = time.perf_counter()
        with ProjectionRunner(
            application_class=EsInventory,
            projection_class=ProductsProjection,
            view_class=PostgresProductsView,
            env=env,
        ) as runner:
            runner.wait(head, timeout=3600)
            return time.perf_counter() - started

    seconds = await asyncio.to_thread(fold)
    return {"rate": int(p["events"]) / seconds}


def pull_and_fold(app: Any, env: dict[str, str]) -> float:
    """Feeds the peer's Projection from its notification log, as its ProjectionRunner would.

    (Its SQLite recorder has no subscriptions, so ProjectionRunner cannot run on SQLite.)
    Returns the seconds taken.
    """
    view = SQLiteFactory(env).tracking_recorder(SqliteProductsView)
    projection = ProductsProjection(view=view)
    started = time.perf_counter()
    after = view.max_tracking_id(app.name) or 0
    while True:
        found = app.recorder.select_notifications(after, 500, inclusive_of_start=False)
        if not found:
            return time.perf_counter() - started
        for notification in found:
            domain_event = app.mapper.to_domain_event(notification)
            projection.process_event(domain_event, Tracking(app.name, notification.id))
            after = notification.id
