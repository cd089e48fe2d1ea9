"""Live query subscriptions: ``GET /{service}/subscriptions/{Name}?<the query's parameters>``.

The answer is ``text/event-stream`` (Server-Sent Events): an ``event: result`` with the query's
answer at once, then one each time a commit changes it (``bicameral.workers.live``: latest
wins, a slow reader skips intermediate results); an ``event: problem`` (a problem document)
when the query, run again, refuses, as for a record since deleted; a comment line
(``: heartbeat``) every ``heartbeat`` seconds while nothing changes; and, when the request's
bearer token expires, an ``event: expired`` before the stream ends. The request is checked as
the query route checks it, before the stream starts: 401, 403, 404 (no such query), 422 (its
parameters), as problem+json.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from bicameral.context import MessageContext
from bicameral.errors import UnknownMessageError
from bicameral.http.problems import from_error
from bicameral.http.routes import query_reader
from bicameral.runtime.live import live_queries
from bicameral.runtime.node import Node, ServiceRuntime
from bicameral.security.authn import Authenticator
from bicameral.security.expiry import bearer_expiry
from bicameral.service import QueryHandler
from bicameral.workers.live import LiveQueries, LiveQuery, Refused

__all__ = ["EVENT_STREAM", "HEARTBEAT", "EventStream", "subscription_router"]

EVENT_STREAM = "text/event-stream"
HEARTBEAT = 15.0
"""Seconds between two heartbeats of a stream with nothing new."""
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx: do not buffer
_HEARTBEAT = b": heartbeat\n\n"
_QUERY_PATH = re.compile(r"/([^/]+)/queries/([^/]+)")
_NOT_LIVE = {"X-Consistency-Token", "X-Consistency-Timeout"}
_SUBSCRIPTION = (
    "A stream of Server-Sent Events: `event: result` with the answer (JSON, as the query "
    "answers it) at once, then again each time a commit changes it; only the latest answer "
    "is sent to a reader that falls behind. `: heartbeat` comments while nothing changes; "
    "`event: expired` then the end when the bearer token expires.\n\n"
)
_EXPIRED = b'event: expired\ndata: {"detail":"the bearer token has expired"}\n\n'


def subscription_router(
    node: Node, authenticate: Authenticator, *, heartbeat: float = HEARTBEAT
) -> APIRouter:
    """Returns the subscription routes of every query-api service of ``node``."""
    router = APIRouter()
    for runtime in node.runtimes.values():
        if "query-api" in runtime.roles:
            _service_routes(router, runtime, authenticate, heartbeat)
    return router


def _service_routes(
    router: APIRouter, runtime: ServiceRuntime, authenticate: Authenticator, heartbeat: float
) -> None:
    hub = live_queries(runtime)
    prefix = f"/{runtime.name}/subscriptions"
    for handler in runtime.service.queries.values():
        _subscription_route(router, prefix, runtime, hub, handler, authenticate, heartbeat)

    @router.get(prefix + "/{name}", include_in_schema=False)
    async def unknown_subscription(name: str) -> None:
        raise UnknownMessageError(f"{runtime.name} has no query {name!r}")


def _subscription_route(
    router: APIRouter,
    prefix: str,
    runtime: ServiceRuntime,
    hub: LiveQueries,
    handler: QueryHandler,
    authenticate: Authenticator,
    heartbeat: float,
) -> None:
    name = handler.query.message_name
    read = query_reader(handler.query)

    async def endpoint(request: Request) -> StreamingResponse:
        principal = await authenticate(request)
        runtime.queries.screen(principal, handler)  # before the parameters are validated
        query = read(request)
        expires = bearer_expiry(request.headers.get("authorization"))
        live = await hub.subscribe(query, MessageContext(principal=principal))
        return EventStream(live, _events(live, heartbeat, expires))

    router.add_api_route(
        f"{prefix}/{name}",
        endpoint,
        methods=["GET"],
        include_in_schema=False,
        name=f"{runtime.name}.{name}.subscription",
    )


class EventStream(StreamingResponse):
    """A stream of a live query's events that ends, and closes its subscription, as soon as
    the client goes away or the events end."""

    def __init__(self, live: LiveQuery, events: AsyncIterator[bytes]) -> None:
        super().__init__(events, media_type=EVENT_STREAM, headers=_HEADERS)
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = asyncio.ensure_future(self.stream_response(send))
        gone = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({stream, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stream, gone):
                task.cancel()
            await asyncio.gather(stream, gone, return_exceptions=True)
            await self.live.close()
        failed = None if stream.cancelled() else stream.exception()
        if failed is not None and not isinstance(failed, OSError):
            raise failed


def _event(number: int, result: Any) -> bytes:
    if isinstance(result, Refused):
        return b"id: %d\nevent: problem\ndata: %s\n\n" % (number, from_error(result.error).body)
    data = orjson.dumps(jsonable_encoder(result))
    return b"id: %d\nevent: result\ndata: %s\n\n" % (number, data)


async def _events(live: LiveQuery, heartbeat: float, expires: float | None) -> AsyncIterator[bytes]:
    """Yields the stream: each new result, heartbeats between, the end at ``expires``."""
    number = 0
    while True:
        left = None if expires is None else expires - time.time()
        if left is not None and left <= 0:
            yield _EXPIRED
            return
        wait = heartbeat if left is None else min(heartbeat, left)
        try:
            result = await asyncio.wait_for(live.next(), wait)
        except TimeoutError:
            if left is None or left > heartbeat:
                yield _HEARTBEAT
            continue
        number += 1
        yield _event(number, result)


def document_subscriptions(doc: dict[str, Any]) -> dict[str, Any]:
    """Returns the OpenAPI document ``doc`` with a subscription operation beside each query's
    (same parameters but the consistency headers, same policy, same refusals)."""
    paths = dict(doc.get("paths", {}))
    for path, item in doc.get("paths", {}).items():
        found = _QUERY_PATH.fullmatch(path)
        if found is None or "get" not in item:
            continue
        service, name = found.groups()
        query = item["get"]
        result = query["responses"]["200"]["content"]["application/json"]["schema"]
        operation = dict(query)
        operation.update(
            summary=f"{name} ({service} subscription)",
            operationId=f"{service}.{name}.subscription",
            description=_SUBSCRIPTION + query.get("description", ""),
            parameters=[p for p in query["parameters"] if p["name"] not in _NOT_LIVE],
            responses={
                **query["responses"],
                "200": {
                    "description": "The query's answer at once, then each new answer.",
                    "content": {
                        EVENT_STREAM: {
                            "schema": {"type": "string"},
                            "x-result-schema": result,
                        }
                    },
                },
            },
        )
        paths[f"/{service}/subscriptions/{name}"] = {"get": operation}
    return {**doc, "paths": paths}
