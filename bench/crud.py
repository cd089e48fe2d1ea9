"""The CRUD peer: the inventory service a user would write instead of CQRS, for the benchmark.

FastAPI with a pydantic body, an asyncpg pool, one table ``products(sku primary key, name,
price_cents, on_hand)``: a command is one ``UPDATE ... RETURNING``, a query one ``SELECT`` by
key. Same routes as bicameral's inventory service, served like ``bicameral up`` (one uvicorn
worker, uvloop, httptools, no access log). It checks no bearer token.

``python -m bench.crud PORT POSTGRES_URL``
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku text PRIMARY KEY,
    name text NOT NULL,
    price_cents integer NOT NULL,
    on_hand integer NOT NULL DEFAULT 0
)
"""


class RegisterProduct(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    price_cents: Annotated[int, Field(ge=0)]


class ReceiveStock(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(gt=0)]


class Product(BaseModel):
    sku: str
    name: str
    price_cents: int
    on_hand: int


def create_app(url: str) -> FastAPI:
    """Returns the CRUD service on the PostgreSQL database at ``url``."""
    db: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db["pool"] = pool = await asyncpg.create_pool(url)
        await pool.execute(SCHEMA)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/inventory/commands/RegisterProduct", status_code=200)
    async def register_product(cmd: RegisterProduct) -> Product:
        row = await db["pool"].fetchrow(
            "INSERT INTO products (sku, name, price_cents) VALUES ($1, $2, $3) "
            "ON CONFLICT (sku) DO NOTHING RETURNING sku, name, price_cents, on_hand",
            cmd.sku,
            cmd.name,
            cmd.price_cents,
        )
        if row is None:
            raise HTTPException(409, f"product {cmd.sku!r} exists")
        return Product(**row)

    @app.post("/inventory/commands/ReceiveStock")
    async def receive_stock(cmd: ReceiveStock) -> Product:
        row = await db["pool"].fetchrow(
            "UPDATE products SET on_hand = on_hand + $2 WHERE sku = $1 "
            "RETURNING sku, name, price_cents, on_hand",
            cmd.sku,
            cmd.quantity,
        )
        if row is None:
            raise HTTPException(404, f"no product {cmd.sku!r}")
        return Product(**row)

    @app.get("/inventory/queries/GetProduct")
    async def get_product(sku: str) -> Product:
        row = await db["pool"].fetchrow(
            "SELECT sku, name, price_cents, on_hand FROM products WHERE sku = $1", sku
        )
        if row is None:
            raise HTTPException(404, f"no product {sku!r}")
        return Product(**row)

    return app


def main() -> None:
    config = uvicorn.Config(
        create_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
