"""The OpenTelemetry SDK, set up from the standard ``OTEL_*`` environment variables.

Tracing is on when any of ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER`` or ``OTEL_TRACES_EXPORTER`` is set, unless
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. Then a tracer provider exports spans
in batches through each exporter ``OTEL_TRACES_EXPORTER`` names (default ``otlp``: OTLP over
HTTP/protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``; ``console``
prints them), sampled as ``OTEL_TRACES_SAMPLER`` says, its resource named by
``OTEL_SERVICE_NAME`` (default: the service the process runs). Every other ``OTEL_*`` variable
the SDK reads (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_HEADERS``...)
applies as the SDK documents it.

A tracer provider installed by the user (or by ``opentelemetry-instrument``) before the node
starts is used as it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import trace

from bicameral import tracing
from bicameral.errors import ConfigurationError

__all__ = ["TRIGGERS", "flush_tracing", "start_tracing", "wanted"]

log = logging.getLogger("bicameral.tracing")

TRIGGERS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_EXPORTER",
)
"""The variables any of which turns tracing on."""
_EXPORTERS = "opentelemetry_traces_exporter"
"""The entry-point group span exporters register under (as the SDK's own configurator reads)."""

_provider: Any = None


def wanted(environ: Mapping[str, str]) -> bool:
    """Returns True when ``environ`` asks for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if _names(environ) == ["none"]:
        return False
    return any(environ.get(name, "").strip() for name in TRIGGERS)


def _names(environ: Mapping[str, str]) -> list[str]:
    raw = environ.get("OTEL_TRACES_EXPORTER", "") or "otlp"
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    """Returns a new span exporter of the name ``OTEL_TRACES_EXPORTER`` gives it."""
    if name == "otlp":
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        name = "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"
    found = entry_points(group=_EXPORTERS, name=name)
    if not found:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed "
            "(pip install 'bicameral[tracing]' gives otlp over HTTP and console)"
        )
    return next(iter(found)).load()()


def start_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Starts exporting bicameral's spans as the ``OTEL_*`` variables say, once per process;
    returns whether tracing is on. ``service`` names the resource unless ``OTEL_SERVICE_NAME``
    (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) does."""
    global _provider
    if tracing.enabled():
        return True
    installed = trace.get_tracer_provider()
    if not isinstance(installed, trace.ProxyTracerProvider):
        tracing.use(installed)
        return True
    env = os.environ if environ is None else environ
    if not wanted(env):
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigurationError(
            "OTEL_* variables ask for traces, but the OpenTelemetry SDK is not installed: "
            "pip install 'bicameral[tracing]'"
        ) from None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    for name in _names(env):
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, env)))
    trace.set_tracer_provider(provider)
    tracing.use(provider)
    _provider = provider
    log.info("tracing on: %s as %s", ", ".join(_names(env)), resource.attributes[SERVICE_NAME])
    return True


async def flush_tracing(timeout: float = 5.0) -> None:
    """Exports the spans still queued, waiting at most ``timeout`` seconds (the SDK also does
    at exit)."""
    if _provider is not None:
        await asyncio.to_thread(_provider.force_flush, int(timeout * 1000))
