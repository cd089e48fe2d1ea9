"""Routes for one service: ``POST /{service}/commands/{Name}``, ``GET /{service}/queries/{Name}``.

The endpoints read the request themselves (FastAPI's per-request parameter solving cost more
than half of a query's time); ``bicameral.http.openapi`` documents them from the same
declarations. The routes are left out of FastAPI's own document.
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

from bicameral.consistency import ConsistencyToken
from bicameral.context import MessageContext, Principal
from bicameral.errors import InvalidMessageError, UnknownMessageError, UnsupportedMediaTypeError
from bicameral.http.edge import MAX_KEY_CHARS, MAX_QUERY_PARAMS
from bicameral.messages import Query, validate_json
from bicameral.runtime.node import ServiceRuntime
from bicameral.runtime.settings import Settings
from bicameral.security.authn import Authenticator
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


def _require_json(request: Request) -> None:
    """Raises UnsupportedMediaTypeError (415) unless the body is sent as JSON."""
    content_type = request.headers.get("content-type")
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
    for key, value in parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_PARAMS):
        found[key].append(value)
    return {
        key: values if key in sequences or len(values) > 1 else values[0]
        for key, values in found.items()
    }


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
    runtime: ServiceRuntime, settings: Settings, authenticate: Authenticator
) -> APIRouter:
    """Returns the router of one service's command and query routes.

    The command and query endpoints read headers and parameters from the request themselves
    (FastAPI's per-request parameter solving cost more than half of a query's time) and
    declare them to OpenAPI explicitly.
    """
    router = APIRouter(prefix=f"/{runtime.name}")

    async def context(request: Request) -> MessageContext:
        principal = await authenticate(request)
        headers = request.headers
        traceparent = headers.get("traceparent")
        if traceparent is not None and _TRACEPARENT.fullmatch(traceparent) is None:
            traceparent = None  # W3C: an invalid traceparent is ignored, never refused
        correlation = headers.get("x-correlation-id")
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


Context = Callable[[Request], Awaitable[MessageContext]]


def _command_route(
    router: APIRouter, runtime: ServiceRuntime, handler: CommandHandler, context: Context
) -> None:
    cls = handler.command
    name = cls.message_name

    async def endpoint(request: Request) -> JSONResponse:
        ctx = await context(request)
        if handler.internal:
            raise refuse(ctx.principal, f"{name} (internal to {runtime.name})")
        runtime.commands.screen(ctx.principal, handler)
        _require_json(request)
        body = validate_json(cls, await request.body(), "body")
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None:
            ctx = MessageContext(
                principal=ctx.principal,
                correlation_id=ctx.correlation_id,
                traceparent=ctx.traceparent,
                idempotency_key=_scoped(ctx.principal, idempotency_key),
            )
        result = await runtime.commands.dispatch(body, ctx)
        headers = {"X-Consistency-Token": result.token.encode()}
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(result.to_json(), headers=headers)

    router.add_api_route(
        f"/commands/{name}",
        endpoint,
        methods=["POST"],
        include_in_schema=False,
        name=f"{runtime.name}.{name}",
        response_class=JSONResponse,
    )


def _query_route(
    router: APIRouter,
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
        ctx = await context(request)
        runtime.queries.screen(ctx.principal, handler)  # before the parameters are validated
        params = read(request)
        raw_token = request.headers.get("x-consistency-token")
        token = ConsistencyToken.decode(raw_token) if raw_token else None
        timeout = _timeout(request.headers.get("x-consistency-timeout"), settings)
        answer = await runtime.queries.ask(params, ctx, token=token, timeout=timeout)
        if response_model is None:
            answer = jsonable_encoder(answer)
        return JSONResponse(answer)

    router.add_api_route(
        f"/queries/{name}",
        endpoint,
        methods=["GET"],
        include_in_schema=False,
        name=f"{runtime.name}.{name}",
        response_class=JSONResponse,
    )
