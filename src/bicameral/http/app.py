"""The FastAPI app factory: every service a Node runs, plus health, readiness, metrics and
``/admin/dlq``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bicameral.context import Principal
from bicameral.http.dlq import dlq_router
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
READY_TIMEOUT = 1.0
"""Seconds each backend has to answer ``/health/ready``'s ping."""

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
_READY = {
    200: {
        "description": "Every backend answers.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {"status": {"const": "ready"}},
                }
            }
        },
    },
    503: {"description": "A backend does not answer; `down` names each, with why."},
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
    ``/health`` (liveness), ``/health/ready`` (readiness: every backend this process's roles
    use answers within ``READY_TIMEOUT``), ``/openapi.json``, ``/docs`` and ``/redoc`` are
    public; ``/metrics`` and ``/admin/dlq`` (parked events) need role admin. The OpenAPI
    document describes the commands and queries this node serves, or those of every service in
    ``api`` (a process behind a proxy documents the API the proxy serves).
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

    @app.get(
        "/health/ready",
        tags=["operations"],
        summary="Readiness",
        operation_id="ready",
        description="200 while every backend this process's roles use answers within "
        f"{READY_TIMEOUT:g} s; 503 naming each one that does not.\n\n"
        "Who may call it: anyone; no token needed.",
        responses=_READY,  # type: ignore[arg-type]
        openapi_extra={"security": []},
    )
    async def ready() -> Response:
        down = await node.unready(timeout=READY_TIMEOUT)
        if down:
            detail = "not ready: " + "; ".join(f"{name}: {why}" for name, why in down.items())
            return problem(
                503,
                "Service unavailable",
                detail,
                type="urn:bicameral:problem:not-ready",
                instance="/health/ready",
                headers={"Retry-After": "1"},
                down=down,
            )
        return Response(b'{"status":"ready"}', media_type="application/json")

    async def admin(request: Request) -> Principal:
        principal = await authn(request)
        if not principal.has_role(ADMIN_ROLE):
            raise refuse(principal, request.url.path)
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

    app.include_router(dlq_router(node, admin))
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
