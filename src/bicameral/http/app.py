"""The FastAPI app factory: every service a Node runs, plus ``/health`` and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from bicameral.http.operations import ADMIN_ROLE, node_lifespan, operations_router
from bicameral.http.problems import install_problem_handlers
from bicameral.http.routes import message_schemas, service_router
from bicameral.runtime.auth import authenticator_for
from bicameral.runtime.node import Node
from bicameral.security.authn import Authenticator, anonymous

__all__ = ["ADMIN_ROLE", "anonymous", "create_app"]


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

    app = FastAPI(title=title, lifespan=node_lifespan(node, manage_node))
    app.state.node = node
    install_problem_handlers(app)
    app.include_router(operations_router(node, authn))
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
