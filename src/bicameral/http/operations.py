"""What every process answers, whatever its roles: ``/health`` and ``/metrics``.

API processes serve these beside their routes (``create_app``); worker-only processes (projector,
relay, reactions) serve them alone on their metrics port (``create_operations_app``). ``/health``
is public; ``/metrics`` needs a bearer token with role admin, as every other admin route.
A scrape first reads the heads of the sources of this process's consumers, so lag is as of the
scrape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bicameral import metrics
from bicameral.context import Principal
from bicameral.http.problems import install_problem_handlers, problem
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import Node
from bicameral.security.authn import Authenticator
from bicameral.security.authorizer import refuse
from bicameral.workers.meters import CONSUMERS

__all__ = [
    "ADMIN_ROLE",
    "create_operations_app",
    "node_lifespan",
    "operations_router",
    "ready",
]

ADMIN_ROLE = "admin"

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


async def ready(node: Node) -> bool:
    """Returns True when ``node`` can do its work now (what ``/health/ready`` answers).

    Hook: until the stores' readiness checks exist this is whether the node has started.
    """
    return node.started


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


def operations_router(node: Node, authn: Authenticator) -> APIRouter:
    """Returns the routes ``/health`` (public) and ``/metrics`` (role admin) of ``node``."""
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> Response:
        if not node.started:
            return problem(503, "Service unavailable", "starting")
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def admin(request: Request) -> Principal:
        principal = await authn(request)
        if not principal.has_role(ADMIN_ROLE):
            raise refuse(principal, "metrics")
        return principal

    @router.get("/metrics", dependencies=[Depends(admin)])
    async def export() -> Response:
        await CONSUMERS.refresh()
        metrics.READY.set(1 if await ready(node) else 0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_operations_app(
    node: Node, *, authenticate: Authenticator | None = None, manage_node: bool = True
) -> FastAPI:
    """Returns the app of a worker-only process: ``/health`` and ``/metrics``, no API.

    It starts and stops ``node`` with itself unless ``manage_node`` is False.
    """
    authn = authenticator_for(node.settings) if authenticate is None else authenticate
    app = FastAPI(
        title="bicameral operations",
        lifespan=node_lifespan(node, manage_node),
        docs_url=None,
        redoc_url=None,
    )
    app.state.node = node
    install_problem_handlers(app)
    app.include_router(operations_router(node, authn))
    return app
