"""OpenTelemetry spans around what bicameral does, and W3C trace context in event metadata.

Only the OpenTelemetry API is used here; the SDK (a tracer provider, its exporter) is set up by
the runtime from the standard ``OTEL_*`` variables (``bicameral.runtime.tracing``), or by the
user. Until a provider is given to ``use``, tracing is off: ``enabled()`` is one global read,
and no code path makes a span.

Trace context travels in an event's metadata as ``traceparent`` and ``tracestate`` (the W3C
header values), which are the CloudEvents attributes of the same names on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "KEYS",
    "SpanKind",
    "StatusCode",
    "context_of",
    "enabled",
    "inject",
    "links_to",
    "log_ids",
    "span",
    "trace_headers",
    "use",
]

KEYS = ("traceparent", "tracestate")
"""The metadata keys (and CloudEvents attributes) that carry trace context."""
MAX_LINKS = 128
"""The most links a batch's span keeps (the SDK's default limit)."""

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def use(provider: TracerProvider | None) -> TracerProvider | None:
    """Makes bicameral's spans with ``provider``'s tracer (None turns tracing off); returns the
    provider used until now."""
    global _tracer, _provider
    previous, _provider = _provider, provider
    _tracer = None if provider is None else provider.get_tracer("bicameral")
    return previous


def enabled() -> bool:
    """Returns True when spans are being made (a provider was given to ``use``)."""
    return _tracer is not None


def context_of(metadata: Mapping[str, Any]) -> Context | None:
    """Returns the trace context carried by ``metadata``, or None when it carries none (or an
    invalid one: W3C says to ignore it)."""
    if not metadata.get("traceparent"):
        return None
    context = _PROPAGATOR.extract(trace_headers(metadata))
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def trace_headers(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Returns the W3C ``traceparent`` and ``tracestate`` headers of ``metadata``'s context."""
    return {key: str(metadata[key]) for key in KEYS if metadata.get(key)}


def inject(metadata: MutableMapping[str, Any]) -> None:
    """Writes the current span's trace context into ``metadata`` (nothing when none is active)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if carrier:
        metadata.update(carrier)


def links_to(metadatas: Iterable[Mapping[str, Any]], parent: Context | None = None) -> list[Link]:
    """Returns a link to each distinct trace context carried by ``metadatas`` other than
    ``parent``'s (at most ``MAX_LINKS``)."""
    seen: dict[tuple[int, int], Link] = {}
    if parent is not None:
        own = trace.get_current_span(parent).get_span_context()
        seen[(own.trace_id, own.span_id)] = Link(own)
    for metadata in metadatas:
        context = context_of(metadata)
        if context is None:
            continue
        found = trace.get_current_span(context).get_span_context()
        key = (found.trace_id, found.span_id)
        if key not in seen:
            seen[key] = Link(found)
            if len(seen) > MAX_LINKS:
                break
    links = list(seen.values())
    return links[1:] if parent is not None else links[:MAX_LINKS]


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    links: Iterable[Link] = (),
    attributes: Mapping[str, Any] | None = None,
    expected: tuple[type[BaseException], ...] = (),
) -> Iterator[Span]:
    """Runs the block in a new current span named ``name``, a child of ``parent`` (default: the
    current span). An exception escaping the block is recorded on the span; unless it is one of
    the ``expected`` outcomes (a refusal, say), it also sets the span's status to error.

    Call only when ``enabled()``.
    """
    assert _tracer is not None, "tracing is off: check enabled() first"
    with _tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        links=list(links),
        attributes=dict(attributes) if attributes else None,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.record_exception(exc)
            if not isinstance(exc, expected):
                current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


def log_ids() -> dict[str, str]:
    """Returns ``trace_id`` and ``span_id`` of the current span, in hex, for log lines (empty
    when no span is active)."""
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return {}
    return {"trace_id": format(found.trace_id, "032x"), "span_id": format(found.span_id, "016x")}
