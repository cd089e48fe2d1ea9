"""The FastAPI app factory: every service a Node runs, plus ``/health`` and ``/metrics``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bicameral.context import Principal
from bicameral.http.docs import install_docs
from bicameral.http.edge import Edge
from bicameral.http.openapi import ServiceApi, complete_document
from bicameral.http.problems import install_problem_handlers, problem
from bicameral.http.routes import service_router
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import Node
from bicameral.security.authn import Authenticator, anonymous
from bicameral.security.authorizer import refuse
from bicameral.service import Service

__all__ = ["ADMIN_ROLE", "anonymous", "create_app"]

ADMIN_ROLE = "admin"

_HEALTH = {
    200: {
        "description": "The process is up.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"const": "ok"}},
                }
            }
        },
    },
    503: {"description": "The process is starting or stopping."},
}
_METRICS = {
    200: {
        "description": "Prometheus metrics of this process, in the text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    401: {"description": "No valid bearer token."},
    403: {"description": "The caller lacks role `admin`."},
}


def _apis(node: Node, api: Sequence[Service] | None) -> list[ServiceApi]:
    if api is not None:
        return [ServiceApi(service) for service in api]
    return [
        ServiceApi(rt.service, "command-api" in rt.roles, "query-api" in rt.roles)
        for rt in node.runtimes.values()
        if rt.roles & {"command-api", "query-api"}
    ]


def create_app(
    node: Node,
    *,
    authenticate: Authenticator | None = None,
    title: str = "bicameral",
    manage_node: bool = True,
    api: Sequence[Service] | None = None,
) -> FastAPI:
    """Returns the app serving ``node``'s services; it starts and stops the node with itself.

    ``authenticate`` defaults to bearer tokens as the node's settings describe (``[auth]``).
    ``/health``, ``/openapi.json``, ``/docs`` and ``/redoc`` are public; ``/metrics`` needs role
    admin. The OpenAPI document describes the commands and queries this node serves, or those
    of every service in ``api`` (a process behind a proxy documents the API the proxy serves).
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

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.node = node
    app.add_middleware(Edge, max_body_bytes=node.settings.http.max_body_bytes)
    install_problem_handlers(app)
    install_docs(app)

    @app.get(
        "/health",
        tags=["operations"],
        summary="Liveness",
        operation_id="health",
        description="Who may call it: anyone; no token needed.",
        responses=_HEALTH,  # type: ignore[arg-type]
        openapi_extra={"security": []},
    )
    async def health() -> Response:
        if not node.started:
            return problem(503, "Service unavailable", "starting")
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def admin(request: Request) -> Principal:
        principal = await authn(request)
        if not principal.has_role(ADMIN_ROLE):
            raise refuse(principal, "metrics")
        return principal

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        operation_id="metrics",
        description="Who may call it (bearer token): role `admin`.",
        responses=_METRICS,  # type: ignore[arg-type]
        openapi_extra={"security": [{"bearer": []}], "x-roles": [ADMIN_ROLE]},
        dependencies=[Depends(admin)],
        response_class=PlainTextResponse,
    )
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for runtime in node.runtimes.values():
        app.include_router(service_router(runtime, node.settings, authn))

    apis = _apis(node, api)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            base = get_openapi(
                title=app.title,
                version=app.version,
                description="Commands change state and answer the positions they produced; "
                "queries read the read models. Every error is `application/problem+json`. "
                "A request line and headers over the server's limit (64 KiB by default) are "
                "refused before any route runs (431, or 401/400/414 when a token, key or the "
                "request line overflowed).",
                routes=app.routes,
            )
            app.openapi_schema = complete_document(base, apis)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
