"""What every request meets before any work is done: size limits, header checks, and the
headers every response carries.

``Edge`` is a plain ASGI middleware, run before routing and authentication:

- a body announced (``Content-Length``) larger than ``max_body_bytes`` is answered 413 at once,
  unread, and the connection is closed; a chunked body is counted as it is read and refused the
  same way the moment it passes the limit;
- ``Idempotency-Key`` and ``X-Correlation-Id`` must be 1 to 200 printable ASCII characters,
  else 400;
- a query string of more than 100 parameters is answered 400, counted in one pass, unparsed;
- every response carries ``X-Content-Type-Options: nosniff`` and, unless the route chose its
  own ``Cache-Control``, ``Cache-Control: no-store`` (answers carry principals' data).

Headers larger than the server accepts never reach it: see ``bicameral.http.server``.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bicameral.errors import MessageError, PayloadTooLargeError
from bicameral.http.problems import from_error

__all__ = ["MAX_KEY_CHARS", "MAX_QUERY_PARAMS", "Edge"]

MAX_KEY_CHARS = 200
"""The longest ``Idempotency-Key`` or ``X-Correlation-Id`` accepted."""
MAX_QUERY_PARAMS = 100
"""The most parameters a query string may have."""

_KEYS = {b"idempotency-key": "Idempotency-Key", b"x-correlation-id": "X-Correlation-Id"}
_PRINTABLE = re.compile(rb"[\x20-\x7e]{1,%d}" % MAX_KEY_CHARS)
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body is larger than {limit} bytes",
        [{"loc": ["body"], "msg": f"at most {limit} bytes", "type": "too_large"}],
    )


def _refusal(scope: Scope, max_body_bytes: int) -> MessageError | None:
    """Returns why the request is refused before it is read, or None."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > max_body_bytes:
                return _too_large(max_body_bytes)
        elif name in _KEYS and _PRINTABLE.fullmatch(value) is None:
            header = _KEYS[name]
            return MessageError(
                f"{header} must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
                [
                    {
                        "loc": ["header", header],
                        "msg": f"1 to {MAX_KEY_CHARS} printable ASCII characters",
                        "type": "value_error",
                    }
                ],
            )
    query: bytes = scope.get("query_string", b"")
    if query.count(b"&") >= MAX_QUERY_PARAMS:
        fields = sum(1 for field in query.split(b"&") if field)
        if fields > MAX_QUERY_PARAMS:
            return MessageError(
                f"the query string has {fields} parameters; at most {MAX_QUERY_PARAMS} are read",
                [
                    {
                        "loc": ["query"],
                        "msg": f"at most {MAX_QUERY_PARAMS} parameters",
                        "type": "too_long",
                    }
                ],
            )
    return None


class Edge:
    """Refuses oversized or malformed requests before routing; adds the response headers."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append(_NOSNIFF)
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(_NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        refusal = _refusal(scope, self.max_body_bytes)
        if refusal is not None:
            await from_error(refusal, scope.get("path"))(scope, receive, send_with_headers)
            return
        if any(name == b"transfer-encoding" for name, _ in scope["headers"]):
            receive = self._counted(receive)
        await self.app(scope, receive, send_with_headers)

    def _counted(self, receive: Receive) -> Receive:
        """Returns ``receive`` raising PayloadTooLargeError once the body passes the limit."""
        seen = 0
        limit = self.max_body_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        return counted
