"""The HTTP server: uvicorn, with the request line and headers bounded.

uvicorn's httptools parser takes a request head of any size, and gathers a long header in pieces
by copying it again for every piece: a client sending megabytes of header would hold the event
loop while every other request waits. ``BoundedHttpToolsProtocol`` counts what arrives before
the head is complete and, once that passes ``[http] max_header_bytes``, answers at once and
closes the connection, without reading the rest. The answer names what overflowed, as the
smaller limits would have: a bearer token is 401 (tokens are at most 8 KiB), an
``Idempotency-Key`` or ``X-Correlation-Id`` 400 (at most 200 characters), the request line 414,
anything else 431; each as problem+json.

Without httptools, h11's own limit (``h11_max_incomplete_event_size``) is set to the same
number (h11 answers 400).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp

from bicameral.http.edge import MAX_KEY_CHARS
from bicameral.http.tracing import traced
from bicameral.runtime.settings import Settings
from bicameral.security.tokens import MAX_TOKEN_BYTES

__all__ = ["GRACEFUL_SHUTDOWN", "server_config"]

GRACEFUL_SHUTDOWN = 3.0
"""Seconds a stopping server lets open responses finish before it cancels them (live query
streams never finish by themselves)."""

log = logging.getLogger("bicameral.http")

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}
_KEYS = {b"idempotency-key": "Idempotency-Key", b"x-correlation-id": "X-Correlation-Id"}


def _answer(status: int, problem: dict[str, Any], *headers: str) -> bytes:
    body = orjson.dumps({**problem, "status": status})
    head = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "content-type: application/problem+json",
        f"content-length: {len(body)}",
        "x-content-type-options: nosniff",
        "cache-control: no-store",
        "connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def head_refusal(line: bytes | None, line_bytes: int, limit: int) -> bytes:
    """Returns the answer to a request head over ``limit`` bytes.

    ``line`` is the start of the line that was being received (None: the request line), and
    ``line_bytes`` how long that line had grown.
    """
    if line is None:
        return _answer(
            414,
            {
                "type": "urn:bicameral:problem:uri-too-long",
                "title": "URI too long",
                "detail": f"the request line is longer than {limit} bytes",
            },
        )
    name = line.partition(b":")[0].strip().lower()
    if name == b"authorization" and line_bytes > MAX_TOKEN_BYTES:
        return _answer(
            401,
            {
                "type": "urn:bicameral:problem:authentication",
                "title": "Unauthorized",
                "detail": f"the bearer token is longer than {MAX_TOKEN_BYTES} bytes (8 KiB)",
            },
            "www-authenticate: Bearer",
        )
    if name in _KEYS and line_bytes > MAX_KEY_CHARS:
        header = _KEYS[name]
        return _answer(
            400,
            {
                "type": "urn:bicameral:problem:message",
                "title": "Bad request",
                "detail": f"{header} must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
                "errors": [
                    {
                        "loc": ["header", header],
                        "msg": f"1 to {MAX_KEY_CHARS} printable ASCII characters",
                        "type": "value_error",
                    }
                ],
            },
        )
    return _answer(
        431,
        {
            "type": "urn:bicameral:problem:header-too-large",
            "title": "Request header fields too large",
            "detail": f"the request line and headers are larger than {limit} bytes",
        },
    )


def _bounded_protocol() -> Any:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, refusing a request head over the configured size."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.max_head = int(self.config.h11_max_incomplete_event_size or 64 << 10)
            self.refused = False
            self.start_head()

        def start_head(self) -> None:
            self.in_head = True
            self.head_bytes = 0
            self.line: bytes | None = None  # the start of the current line; None: request line
            self.line_bytes = 0

        def data_received(self, data: bytes) -> None:
            if self.refused:
                return
            if self.in_head:
                self.head_bytes += len(data)
                cut = data.rfind(b"\n")
                if cut >= 0:
                    self.line, self.line_bytes = data[cut + 1 : cut + 33], len(data) - cut - 1
                else:
                    if self.line is not None and len(self.line) < 32:
                        self.line += data[: 32 - len(self.line)]
                    self.line_bytes += len(data)
            super().data_received(data)
            if self.in_head and self.head_bytes > self.max_head:
                self.refuse(head_refusal(self.line, self.line_bytes, self.max_head))

        def refuse(self, answer: bytes) -> None:
            self.refused = True
            if self.transport.is_closing():
                return
            log.info("refused a request head over %d bytes", self.max_head)
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(answer)
            self.transport.close()

        def on_headers_complete(self) -> None:
            if self.refused:
                return
            self.in_head = False
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.max_head:  # it came whole, in one read: blame its longest part
                name, value = max(self.headers, key=lambda h: len(h[1]), default=(b"", b""))
                if len(self.url) >= len(value):
                    self.refuse(head_refusal(None, len(self.url), self.max_head))
                else:
                    line = name + b": " + value[:16]
                    self.refuse(head_refusal(line, len(value), self.max_head))
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self.refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self.refused:
                return
            super().on_message_complete()
            self.start_head()

    return BoundedHttpToolsProtocol


def server_config(app: ASGIApp, settings: Settings, **options: Any) -> uvicorn.Config:
    """Returns uvicorn's configuration serving ``app`` on the settings' host and port, with the
    request head bounded by ``settings.http.max_header_bytes`` and each request in a span when
    tracing is on (``bicameral.http.tracing``); ``options`` go to uvicorn."""
    http = _bounded_protocol() if importlib.util.find_spec("httptools") else "h11"
    defaults: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": http,
        "h11_max_incomplete_event_size": settings.http.max_header_bytes,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
    }
    return uvicorn.Config(traced(app), **(defaults | options))
