"""The FastAPI app factory: every service a Node runs, plus ``/health`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bicameral.context import Principal
from bicameral.http.problems import install_problem_handlers, problem
from bicameral.http.routes import message_schemas, service_router
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import Node
from bicameral.security.authn import Authenticator, anonymous
from bicameral.security.authorizer import refuse

__all__ = ["ADMIN_ROLE", "anonymous", "create_app"]

ADMIN_ROLE = "admin"


def create_app(
    node: Node,
    *,
    authenticate: Authenticator | None = None,
    title: str = "bicameral",
    manage_node: bool = True,
) -> FastAPI:
    """Returns the app serving ``node``'s services; it starts and stops the node with itself.

    ``authenticate`` defaults to bearer tokens as the node's settings describe (``[auth]``).
    ``/health``, ``/openapi.json`` and ``/docs`` are public; ``/metrics`` needs role admin.
    """
    authn = authenticator_for(node.settings) if authenticate is None else authenticate

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

    async def admin(request: Request) -> Principal:
        principal = await authn(request)
        if not principal.has_role(ADMIN_ROLE):
            raise refuse(principal, "metrics")
        return principal

    @app.get("/metrics", tags=["operations"], dependencies=[Depends(admin)])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for runtime in node.runtimes.values():
        app.include_router(service_router(runtime, node.settings, authn))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {})
            for runtime in node.runtimes.values():
                components.setdefault("schemas", {}).update(message_schemas(runtime))
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            schema["security"] = [{"bearer": []}, {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
