"""The lean route table: ``POST /{service}/commands/{Name}`` and ``GET /{service}/queries/{Name}``
served by one dict lookup, in front of FastAPI's router.

FastAPI's routing (matching every route in turn, then its request handler) cost more than the
endpoints themselves. ``FastPath`` sits inside the app's middleware (after ``Edge``, so the
limits and the response headers are the same) and answers a request whose method and path
name a command or query route exactly, with the very endpoint FastAPI would have called; an
error the endpoint raises goes to the app's exception handlers as it would under the router,
and one no handler takes goes on up to the server-error middleware. Everything else (a wrong
method, an unknown name, a trailing slash, ``/docs``, ``/openapi.json``, ``/health``,
``/metrics``, ``/admin``...) goes on to FastAPI unchanged, which also keeps the same routes
registered so that those answers (405, 404, redirects) stay what they were.

The first request to each entry of the table goes through the router, and ``FastPath`` learns
from it the route the router picked: only when that route's endpoint is the table's does it
serve the later requests itself, writing the router's keys into their scope (``route``,
``endpoint``, ``path_params``), so that whatever reads them (a tracing span named after the
route) sees what the router would have set.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Endpoint", "FastPath", "RouteTable"]

Endpoint = Callable[[Request], Awaitable[Response]]
"""A command or query endpoint: the answer to one request."""
RouteTable = dict[tuple[str, str], Endpoint]
"""``(method, path)`` -> endpoint, for the paths served without routing."""


class FastPath:
    """Serves the requests ``routes`` names exactly; passes every other request to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: RouteTable) -> None:
        self.app = app
        self.routes = routes
        self._learned: dict[tuple[str, str], tuple[Endpoint, BaseRoute]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            key = (scope["method"], scope["path"])
            learned = self._learned.get(key)
            if learned is not None:
                await self._serve(learned, scope, receive, send)
                return
            if key in self.routes:
                try:
                    await self.app(scope, receive, send)
                finally:
                    self._learn(key, scope)
                return
        await self.app(scope, receive, send)

    def _learn(self, key: tuple[str, str], routed: Scope) -> None:
        """Keeps the route the router picked for ``key`` when it ends at the table's endpoint."""
        route = routed.get("route")
        if route is not None and routed.get("endpoint") is self.routes[key]:
            self._learned[key] = (self.routes[key], route)

    async def _serve(
        self, learned: tuple[Endpoint, BaseRoute], scope: Scope, receive: Receive, send: Send
    ) -> None:
        endpoint, route = learned
        scope["endpoint"] = endpoint
        scope["path_params"] = {}
        scope["route"] = route
        request = Request(scope, receive, send)
        response: Response | None
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await _handled(request, exc)
        if response is not None:  # a handler may answer nothing, as under the router
            await response(scope, receive, send)


async def _handled(request: Request, exc: Exception) -> Response | None:
    """Returns the answer of the app's handler for ``exc``, as the router would have got it;
    raises ``exc`` again when no handler below the server-error middleware takes it."""
    handler = _handler(request.scope["app"].exception_handlers, exc)
    if handler is None:
        raise exc
    if _is_async(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    exc.__traceback__ = None  # as Starlette does: a reused exception would keep growing it
    return response  # type: ignore[no-any-return]


def _handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    """Returns the handler Starlette's exception middleware would pick for ``exc``: by status
    for an HTTPException, else by class; ``Exception`` and 500 belong to the server-error
    middleware, outside."""
    if isinstance(exc, HTTPException) and exc.status_code != 500:
        found = handlers.get(exc.status_code)
        if found is not None:
            return found
    for cls in type(exc).__mro__:
        if cls is not Exception and cls in handlers:
            return handlers[cls]
    return None


def _is_async(handler: Any) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )
