"""The HTTP server: uvicorn, with the request line and headers bounded.

uvicorn's httptools parser takes a request head of any size, and gathers a long header in pieces
by copying it again for every piece: a client sending megabytes of header would hold the event
loop while every other request waits. ``BoundedHttpToolsProtocol`` counts what arrives before
the head is complete and, once that passes ``[http] max_header_bytes``, answers 431
(problem+json) and closes the connection. Without httptools, h11's own limit
(``h11_max_incomplete_event_size``) is set to the same number (h11 answers 400).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp

from bicameral.runtime.settings import Settings

__all__ = ["server_config"]

log = logging.getLogger("bicameral.http")


def _head_too_large(limit: int) -> bytes:
    body = orjson.dumps(
        {
            "type": "urn:bicameral:problem:header-too-large",
            "title": "Request header fields too large",
            "status": 431,
            "detail": f"the request line and headers are larger than {limit} bytes",
        }
    )
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        "x-content-type-options: nosniff\r\n"
        "cache-control: no-store\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _bounded_protocol() -> Any:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, refusing a request head over the configured size."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.max_head = int(self.config.h11_max_incomplete_event_size or 64 << 10)
            self.in_head = True
            self.head_bytes = 0
            self.refused = False

        def data_received(self, data: bytes) -> None:
            if self.refused:
                return
            if self.in_head:
                self.head_bytes += len(data)
            super().data_received(data)
            if self.in_head and self.head_bytes > self.max_head:
                self.refuse_head()  # still no end of the head in sight

        def refuse_head(self) -> None:
            self.refused = True
            if self.transport.is_closing():
                return
            log.info("refused a request head over %d bytes", self.max_head)
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(_head_too_large(self.max_head))
            self.transport.close()

        def on_headers_complete(self) -> None:
            if self.refused:
                return
            self.in_head = False
            self.head_bytes = 0
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self.max_head:  # it came whole, in one read
                self.refuse_head()
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self.refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self.refused:
                return
            super().on_message_complete()
            self.in_head = True

    return BoundedHttpToolsProtocol


def server_config(app: ASGIApp, settings: Settings, **options: Any) -> uvicorn.Config:
    """Returns uvicorn's configuration serving ``app`` on the settings' host and port, with the
    request head bounded by ``settings.http.max_header_bytes``; ``options`` go to uvicorn."""
    http = _bounded_protocol() if importlib.util.find_spec("httptools") else "h11"
    defaults: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "http": http,
        "h11_max_incomplete_event_size": settings.http.max_header_bytes,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
    }
    return uvicorn.Config(app, **(defaults | options))
