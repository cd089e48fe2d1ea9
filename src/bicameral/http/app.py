"""The FastAPI app factory: every service a Node runs, plus health, readiness, metrics and
``/admin/dlq``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from bicameral.http.console import console_router
from bicameral.http.dlq import dlq_router
from bicameral.http.docs import install_docs
from bicameral.http.edge import Edge
from bicameral.http.openapi import ServiceApi, complete_document
from bicameral.http.operations import (
    ADMIN_ROLE,
    READY_TIMEOUT,
    admin_only,
    node_lifespan,
    operations_router,
)
from bicameral.http.problems import install_problem_handlers
from bicameral.http.routes import service_router
from bicameral.http.subscriptions import document_subscriptions, subscription_router
from bicameral.http.tracing import FASTAPI_TELEMETRY
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import Node
from bicameral.security.authn import Authenticator, anonymous
from bicameral.service import Service

__all__ = ["ADMIN_ROLE", "READY_TIMEOUT", "anonymous", "create_app"]


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
    public; ``/metrics`` and ``/admin/dlq`` (parked events) need role admin, as does the web
    console at ``/console`` (served with the query API). The OpenAPI
    document describes the commands and queries this node serves, or those of every service in
    ``api`` (a process behind a proxy documents the API the proxy serves).
    """
    authn = authenticator_for(node.settings) if authenticate is None else authenticate

    app = FastAPI(
        title=title,
        lifespan=node_lifespan(node, manage_node),
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.node = node
    app.add_middleware(Edge, max_body_bytes=node.settings.http.max_body_bytes)
    install_problem_handlers(app)
    install_docs(app)
    admin = admin_only(authn)
    app.include_router(operations_router(node, admin))
    app.include_router(dlq_router(node, admin))
    for runtime in node.runtimes.values():
        app.include_router(service_router(runtime, node.settings, authn))
    app.include_router(subscription_router(node, authn))
    if any("query-api" in rt.roles for rt in node.runtimes.values()):
        app.include_router(console_router(node, api or [], authn))

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
            app.openapi_schema = document_subscriptions(complete_document(base, apis))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
