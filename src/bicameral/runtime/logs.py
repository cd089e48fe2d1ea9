"""Structured logs through structlog, one pipeline for every record of a process.

The library logs through ``logging``; users may log through either ``logging`` or
``structlog.get_logger()``. Each record gets its ``level``, ``logger``, ``time`` (UTC, ISO
8601), ``message``, the fields given with ``extra={...}``, the context variables bound with
``structlog.contextvars`` (the buses bind ``correlation_id``, ``causation_id`` and
``message_id`` while a message runs, so every line a command causes names it), the process's
static fields (its ``service`` and ``roles``), with tracing on the ``trace_id`` and ``span_id``
of the span active when it was logged and, after a failure, its ``exception``. It is
written to stderr as one JSON object a line, or, when stderr is a terminal, as a line for
people to read.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import Processor

from bicameral import tracing

__all__ = ["configure_logging", "log_formatter"]

_NOISE = ("color_message",)
"""Fields other libraries put in ``extra`` for their own formatters (uvicorn's colours)."""


def _static(fields: dict[str, Any]) -> Processor:
    def add(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        for key in _NOISE:
            event.pop(key, None)
        return event

    return add


def _trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Adds the current span's ``trace_id`` and ``span_id``, with tracing on."""
    if tracing.enabled():
        for key, value in tracing.log_ids().items():
            event.setdefault(key, value)
    return event


def _dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def _steps(static: dict[str, Any], *, foreign: bool) -> list[Processor]:
    """Returns what every record goes through: one from logging (``foreign``) gets its
    ``extra`` fields too, one from structlog has its own already."""
    extra: list[Processor] = [structlog.stdlib.ExtraAdder()] if foreign else []
    return [
        structlog.contextvars.merge_contextvars,
        _trace_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        *extra,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        _static(static),
    ]


def log_formatter(*, json: bool, **static: Any) -> logging.Formatter:
    """Returns the formatter of the pipeline: JSON lines, or lines for a terminal."""
    renderer: list[Processor] = (
        [
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
        if json
        else [structlog.dev.ConsoleRenderer(timestamp_key="time")]
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_steps(static, foreign=True),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


def configure_logging(
    level: str = "INFO",
    *,
    json: bool | None = None,
    stream: TextIO | None = None,
    **static: Any,
) -> None:
    """Sends every log record to ``stream`` (stderr) tagged with ``static`` fields: JSON lines,
    unless ``json`` is False or, when it is None, the stream is a terminal."""
    out = stream if stream is not None else sys.stderr
    as_json = json if json is not None else not out.isatty()
    handler = logging.StreamHandler(out)
    handler.setFormatter(log_formatter(json=as_json, **static))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_steps(static, foreign=False),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
