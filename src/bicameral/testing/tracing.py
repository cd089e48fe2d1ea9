"""Spans recorded in memory, for tests of what a flow traces (needs ``bicameral[tracing]``).

::

    with record_spans() as spans:
        await bus.dispatch(command, context)
    assert [s.name for s in spans.get_finished_spans()] == ["append shop", "command Order"]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bicameral import tracing

__all__ = ["record_spans"]


@contextmanager
def record_spans(service: str = "test") -> Iterator[InMemorySpanExporter]:
    """Turns bicameral's tracing on for the block, every span kept by the exporter it yields;
    as it was afterwards (the global tracer provider is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(previous)
        provider.shutdown()
