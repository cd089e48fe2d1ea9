"""A span for every HTTP request, around the whole ASGI app.

``traced`` wraps the outermost app (``bicameral up`` and ``bicameral serve`` wrap what uvicorn
serves, see ``bicameral.http.server``), so whatever answers a request, a route, a refusal at the
edge or a shortcut past the router, runs inside its span. The span continues the caller's trace
(W3C ``traceparent`` and ``tracestate`` headers) and is named ``<METHOD> <route>`` (the route's
path template, or the method alone when no route matched). Probes and scrapes (``/health``,
``/health/ready``, ``/metrics``) are not traced, nor are query subscriptions (streams that stay
open for hours; each run of their query is a ``query`` span of its own). With tracing off a
request costs one check.

FastAPI's own telemetry is turned off (``FASTAPI_TELEMETRY``): this span replaces its request
spans, and bicameral's Prometheus metrics and structured logs its OpenTelemetry metrics and logs
(with them off, a request costs FastAPI no look-up of OpenTelemetry providers either).
"""

from __future__ import annotations

from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bicameral import tracing

__all__ = ["FASTAPI_TELEMETRY", "UNTRACED", "TracedApp", "traced"]

FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "operation_spans": False,
    "metrics": False,
    "logs": False,
}
"""FastAPI's telemetry settings for bicameral's apps: no spans, metrics or logs of its own."""
UNTRACED = frozenset({"/health", "/health/ready", "/metrics"})
"""Paths whose requests make no span (probes and scrapes)."""

_HEADERS = {name.encode(): name for name in tracing.KEYS}


def _untraced(path: str) -> bool:
    return path in UNTRACED or "/subscriptions/" in path


class TracedApp:
    """Runs each HTTP request of ``app`` in a server span, with tracing on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled() or _untraced(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        carried = {_HEADERS[n]: v.decode("latin-1") for n, v in scope["headers"] if n in _HEADERS}
        method = scope.get("method", "")
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        with tracing.span(
            method,
            kind=tracing.SpanKind.SERVER,
            parent=tracing.context_of(carried),
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:
            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(tracing.StatusCode.ERROR)


def traced(app: ASGIApp) -> ASGIApp:
    """Returns ``app`` with a span for each HTTP request (for a server you run yourself)."""
    return app if isinstance(app, TracedApp) else TracedApp(app)
