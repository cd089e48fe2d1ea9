"""Routes for one service: ``POST /{service}/commands/{Name}``, ``GET /{service}/queries/{Name}``.

The endpoints read the request themselves (FastAPI's per-request parameter solving cost more
than half of a query's time); ``bicameral.http.openapi`` documents them from the same
declarations. The routes are left out of FastAPI's own document. Each endpoint is also written
into the route table ``bicameral.http.fastpath.FastPath`` serves without routing; FastAPI keeps
the routes so that every other answer (405, 404, redirects) stays its own.
"""

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, get_origin
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from bicameral.consistency import ConsistencyToken
from bicameral.context import MessageContext, Principal
from bicameral.errors import InvalidMessageError, UnknownMessageError, UnsupportedMediaTypeError
from bicameral.http.answers import json_answer
from bicameral.http.edge import MAX_KEY_CHARS, MAX_QUERY_PARAMS
from bicameral.http.fastpath import Endpoint, RouteTable
from bicameral.messages import Query, validate_json
from bicameral.runtime.node import ServiceRuntime
from bicameral.runtime.settings import Settings
from bicameral.security.authn import Authenticator, BearerAuthenticator
from bicameral.security.authorizer import refuse
from bicameral.service import CommandHandler, QueryHandler

__all__ = ["SECONDS_PATTERN", "Authenticator", "query_reader", "service_router"]

SECONDS_PATTERN = "^[0-9]{1,9}(\\.[0-9]{1,9})?$"
"""How ``X-Consistency-Timeout`` is written: seconds, as ``5`` or ``0.25``."""
SECONDS = re.compile(SECONDS_PATTERN[1:-1])

_TRACEPARENT = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_CHARS}}}")


def _timeout(raw: str | None, settings: Settings) -> float:
    if raw is None:
        return settings.consistency_timeout
    if SECONDS.fullmatch(raw) is None:
        raise InvalidMessageError(
            "X-Consistency-Timeout must be a number of seconds",
            [
                {
                    "loc": ["header", "X-Consistency-Timeout"],
                    "msg": "not a number of seconds",
                    "type": "value_error",
                }
            ],
        )
    return min(float(raw), settings.max_consistency_timeout)


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _require_json(content_type: str | None) -> None:
    """Raises UnsupportedMediaTypeError (415) unless the body is sent as JSON."""
    if content_type is None or not _is_json(content_type):
        raise UnsupportedMediaTypeError(
            f"send the command as application/json, not {content_type or 'no Content-Type'}",
            [
                {
                    "loc": ["header", "Content-Type"],
                    "msg": "not application/json",
                    "type": "media_type",
                }
            ],
        )


def _scoped(principal: Principal, key: str) -> str:
    """Returns the key as stored: one caller's keys never replay another caller's result."""
    return f"{principal.subject}\x1f{key}" if principal.subject else key


def _sequence_fields(cls: type[BaseModel]) -> frozenset[str]:
    found = set()
    for name, field in cls.model_fields.items():
        origin = get_origin(field.annotation)
        if origin in (list, tuple, set, frozenset) or field.annotation in (list, tuple, set):
            found.add(field.alias or name)
    return frozenset(found)


def _query_values(request: Request, sequences: frozenset[str]) -> dict[str, Any]:
    """Returns the query string as a parameter model takes it, read in one linear pass.

    The edge (``bicameral.http.edge``) has already refused more than ``MAX_QUERY_PARAMS``."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    found: defaultdict[str, list[str]] = defaultdict(list)
    for key, value in _pairs(query):
        found[key].append(value)
    return {
        key: values if key in sequences or len(values) > 1 else values[0]
        for key, values in found.items()
    }


def _pairs(query: str) -> list[tuple[str, str]]:
    """Returns ``parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_PARAMS)``,
    splitting it directly when nothing in it is escaped (``%`` or ``+``)."""
    if "%" in query or "+" in query or query.count("&") >= MAX_QUERY_PARAMS:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_PARAMS)
    pairs = []
    for field in query.split("&"):
        if field:
            key, _, value = field.partition("=")
            pairs.append((key, value))
    return pairs


def query_reader(cls: type[Query]) -> Callable[[Request], Query]:
    """Returns the reader of a ``cls`` query from a request's query string; it raises
    RequestValidationError (422) naming each parameter at fault."""
    sequences = _sequence_fields(cls)

    def read(request: Request) -> Query:
        try:
            return cls.model_validate_strings(_query_values(request, sequences), strict=True)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for err in errors:
                err["loc"] = ("query", *err["loc"])
            raise RequestValidationError(errors) from None

    return read


def service_router(
    runtime: ServiceRuntime,
    settings: Settings,
    authenticate: Authenticator,
    table: RouteTable | None = None,
) -> APIRouter:
    """Returns the router of one service's command and query routes, and writes each route's
    endpoint into ``table`` (served by ``bicameral.http.fastpath.FastPath``).

    The command and query endpoints read headers and parameters from the request themselves
    (FastAPI's per-request parameter solving cost more than half of a query's time) and
    declare them to OpenAPI explicitly.
    """
    router = _Router(prefix=f"/{runtime.name}", table={} if table is None else table)
    bearer = authenticate if isinstance(authenticate, BearerAuthenticator) else None

    async def context(request: Request, headers: Headers) -> MessageContext:
        if bearer is None:
            principal = await authenticate(request)
        else:
            principal = bearer.principal(_text(headers, b"authorization"))
        traceparent = _text(headers, b"traceparent")
        if traceparent is not None and _TRACEPARENT.fullmatch(traceparent) is None:
            traceparent = None  # W3C: an invalid traceparent is ignored, never refused
        correlation = _text(headers, b"x-correlation-id")
        if correlation:
            return MessageContext(
                principal=principal, traceparent=traceparent, correlation_id=correlation
            )
        return MessageContext(principal=principal, traceparent=traceparent)

    if "command-api" in runtime.roles:
        for handler in runtime.service.commands.values():
            _command_route(router, runtime, handler, context)

        @router.post("/commands/{name}", include_in_schema=False)
        async def unknown_command(name: str) -> None:
            raise UnknownMessageError(f"{runtime.name} has no command {name!r}")

    if "query-api" in runtime.roles:
        for qhandler in runtime.service.queries.values():
            _query_route(router, runtime, qhandler, settings, context)

        @router.get("/queries/{name}", include_in_schema=False)
        async def unknown_query(name: str) -> None:
            raise UnknownMessageError(f"{runtime.name} has no query {name!r}")

    return router


Headers = dict[bytes, bytes]
"""A request's headers by lower-case name; the first of repeated ones, as Starlette reads."""
Context = Callable[[Request, Headers], Awaitable[MessageContext]]


def _headers(request: Request) -> Headers:
    return dict(reversed(request.scope["headers"]))


async def _body(receive: Receive) -> bytes:
    """Returns the request's body, read as ``Request.body()`` reads it, without its stream."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _text(headers: Headers, name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


class _Router(APIRouter):
    """An APIRouter that also writes its message routes into a fast path's table."""

    def __init__(self, *, prefix: str, table: RouteTable) -> None:
        super().__init__(prefix=prefix)
        self.table = table

    def add_message_route(self, path: str, endpoint: Endpoint, method: str, name: str) -> None:
        self.add_api_route(
            path,
            endpoint,
            methods=[method],
            include_in_schema=False,
            name=name,
            response_class=JSONResponse,
        )
        self.table[(method, self.prefix + path)] = endpoint


def _command_route(
    router: _Router, runtime: ServiceRuntime, handler: CommandHandler, context: Context
) -> None:
    cls = handler.command
    name = cls.message_name

    async def endpoint(request: Request) -> Response:
        headers = _headers(request)
        ctx = await context(request, headers)
        if handler.internal:
            raise refuse(ctx.principal, f"{name} (internal to {runtime.name})")
        runtime.commands.screen(ctx.principal, handler)
        _require_json(_text(headers, b"content-type"))
        body = validate_json(cls, await _body(request.receive), "body")
        idempotency_key = _text(headers, b"idempotency-key")
        if idempotency_key is not None:
            ctx = MessageContext(
                principal=ctx.principal,
                correlation_id=ctx.correlation_id,
                traceparent=ctx.traceparent,
                idempotency_key=_scoped(ctx.principal, idempotency_key),
            )
        result = await runtime.commands.dispatch(body, ctx)
        answer = result.to_json()
        extra = {"X-Consistency-Token": answer["consistency_token"]}
        if result.replayed:
            extra["Idempotent-Replayed"] = "true"
        return json_answer(answer, extra)

    router.add_message_route(f"/commands/{name}", endpoint, "POST", f"{runtime.name}.{name}")


def _query_route(
    router: _Router,
    runtime: ServiceRuntime,
    handler: QueryHandler,
    settings: Settings,
    context: Context,
) -> None:
    cls = handler.query
    name = cls.message_name
    result = handler.result
    response_model = result if isinstance(result, type) and issubclass(result, BaseModel) else None
    read = query_reader(cls)

    async def endpoint(request: Request) -> Response:
        headers = _headers(request)
        ctx = await context(request, headers)
        runtime.queries.screen(ctx.principal, handler)  # before the parameters are validated
        params = read(request)
        raw_token = _text(headers, b"x-consistency-token")
        token = ConsistencyToken.decode(raw_token) if raw_token else None
        timeout = _timeout(_text(headers, b"x-consistency-timeout"), settings)
        answer = await runtime.queries.ask(params, ctx, token=token, timeout=timeout)
        if response_model is None:
            answer = jsonable_encoder(answer)
        return json_answer(answer)

    router.add_message_route(f"/queries/{name}", endpoint, "GET", f"{runtime.name}.{name}")
