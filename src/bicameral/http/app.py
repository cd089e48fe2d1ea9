"""The FastAPI app factory: every service a Node runs, plus ``/health`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bicameral.context import ANONYMOUS, Principal
from bicameral.http.problems import install_problem_handlers, problem
from bicameral.http.routes import Authenticator, message_schemas, service_router
from bicameral.runtime.node import Node

__all__ = ["anonymous", "create_app"]


async def anonymous(request: Request) -> Principal:
    """Returns the anonymous principal: the authenticator when none is configured."""
    return ANONYMOUS


def create_app(
    node: Node,
    *,
    authenticate: Authenticator = anonymous,
    title: str = "bicameral",
    manage_node: bool = True,
) -> FastAPI:
    """Returns the app serving ``node``'s services; it starts and stops the node with itself."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_node:
            await node.start()
        try:
            yield
        finally:
            if manage_node:
                await node.stop()

    app = FastAPI(title=title, lifespan=lifespan)
    app.state.node = node
    install_problem_handlers(app)

    @app.get("/health", tags=["operations"])
    async def health() -> Response:
        if not node.started:
            return problem(503, "Service unavailable", "starting")
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for runtime in node.runtimes.values():
        app.include_router(service_router(runtime, node.settings, authenticate))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for runtime in node.runtimes.values():
                components.update(message_schemas(runtime))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
