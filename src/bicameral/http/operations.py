"""What every process answers, whatever its roles: ``/health``, ``/health/ready``, ``/metrics``.

API processes serve these beside their routes (``create_app``); worker-only processes (projector,
relay, reactions) serve them alone on their metrics port (``create_operations_app``).
``/health`` (liveness) and ``/health/ready`` (readiness: every backend this process's roles use
answers within ``READY_TIMEOUT``) are public; ``/metrics`` needs a bearer token with role admin,
as every other admin route. A scrape first reads the heads of the sources of this process's
consumers and their parked events, so lag is as of the scrape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bicameral import metrics
from bicameral.context import Principal
from bicameral.http.problems import install_problem_handlers, problem
from bicameral.http.tracing import FASTAPI_TELEMETRY
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import Node
from bicameral.security.authn import Authenticator
from bicameral.security.authorizer import refuse
from bicameral.workers.meters import CONSUMERS

__all__ = [
    "ADMIN_ROLE",
    "READY_TIMEOUT",
    "admin_only",
    "create_operations_app",
    "node_lifespan",
    "operations_router",
    "ready",
]

ADMIN_ROLE = "admin"
READY_TIMEOUT = 1.0
"""Seconds each backend has to answer ``/health/ready``'s ping."""

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
Admin = Callable[[Request], Awaitable[Principal]]

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


async def ready(node: Node) -> dict[str, str]:
    """Returns what keeps ``node`` from doing its work now (what ``/health/ready`` answers):
    backend name -> reason; empty when it is ready."""
    return await node.unready(timeout=READY_TIMEOUT)


def admin_only(authn: Authenticator) -> Admin:
    """Returns the dependency of the admin routes: the caller, who must hold role admin."""

    async def admin(request: Request) -> Principal:
        principal = await authn(request)
        if not principal.has_role(ADMIN_ROLE):
            raise refuse(principal, request.url.path)
        return principal

    return admin


def node_lifespan(node: Node, manage_node: bool = True) -> Lifespan:
    """Returns an app's lifespan that starts ``node`` with the app and stops it after."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_node:
            await node.start()
        try:
            yield
        finally:
            if manage_node:
                await node.stop()

    return lifespan


def operations_router(node: Node, admin: Admin) -> APIRouter:
    """Returns the routes ``/health`` and ``/health/ready`` (public) and ``/metrics`` (``admin``)
    of ``node``, each documented as the OpenAPI contract asks."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/health",
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

    @router.get(
        "/health/ready",
        summary="Readiness",
        operation_id="ready",
        description="200 while every backend this process's roles use answers within "
        f"{READY_TIMEOUT:g} s; 503 naming each one that does not.\n\n"
        "Who may call it: anyone; no token needed.",
        responses=_READY,  # type: ignore[arg-type]
        openapi_extra={"security": []},
    )
    async def readiness() -> Response:
        down = await ready(node)
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

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        operation_id="metrics",
        description="Lag, parked events and errors of every consumer this process works on, "
        "as of the scrape, besides its request metrics.\n\n"
        "Who may call it (bearer token): role `admin`.",
        responses=_METRICS,  # type: ignore[arg-type]
        openapi_extra={"security": [{"bearer": []}], "x-roles": [ADMIN_ROLE]},
        dependencies=[Depends(admin)],
        response_class=PlainTextResponse,
    )
    async def export() -> Response:
        await CONSUMERS.refresh()
        metrics.READY.set(0 if await ready(node) else 1)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_operations_app(
    node: Node, *, authenticate: Authenticator | None = None, manage_node: bool = True
) -> FastAPI:
    """Returns the app of a worker-only process: ``/health``, ``/health/ready`` and
    ``/metrics``, no API.

    It starts and stops ``node`` with itself unless ``manage_node`` is False.
    """
    authn = authenticator_for(node.settings) if authenticate is None else authenticate
    app = FastAPI(
        title="bicameral operations",
        lifespan=node_lifespan(node, manage_node),
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY,
    )
    app.state.node = node
    install_problem_handlers(app)
    app.include_router(operations_router(node, admin_only(authn)))
    return app
