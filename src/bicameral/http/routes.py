"""Routes for one service: ``POST /{service}/commands/{Name}``, ``GET /{service}/queries/{Name}``.

The endpoints read the request themselves (FastAPI's per-request parameter solving cost more
than half of a query's time) and declare their parameters and bodies to OpenAPI explicitly.
"""

from collections.abc import Awaitable, Callable
from typing import Any, get_origin

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import (
    validation_error_definition,
    validation_error_response_definition,
)
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from bicameral.consistency import ConsistencyToken
from bicameral.context import MessageContext, Principal
from bicameral.errors import InvalidMessageError, UnknownMessageError
from bicameral.messages import validate_json
from bicameral.runtime.node import ServiceRuntime
from bicameral.runtime.settings import Settings
from bicameral.security.authn import Authenticator
from bicameral.security.authorizer import refuse
from bicameral.service import CommandHandler, QueryHandler

__all__ = ["Authenticator", "CommandResponse", "message_schemas", "service_router"]


class CommandResponse(BaseModel):
    """What an applied command answers."""

    consistency_token: str
    position: int
    streams: dict[str, int]
    stream_id: str | None = None
    version: int | None = None


def _timeout(raw: str | None, settings: Settings) -> float:
    if raw is None:
        return settings.consistency_timeout
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
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
    return min(value, settings.max_consistency_timeout)


def _scoped(principal: Principal, key: str) -> str:
    """Returns the key as stored: one caller's keys never replay another caller's result."""
    return f"{principal.subject}\x1f{key}" if principal.subject else key


def message_schemas(runtime: ServiceRuntime) -> dict[str, Any]:
    """Returns the JSON schemas of a service's HTTP commands and queries, for OpenAPI."""
    schemas: dict[str, Any] = {}
    messages: list[type[BaseModel]] = [
        h.command for h in runtime.service.commands.values() if not h.internal
    ]
    messages += [h.query for h in runtime.service.queries.values()]
    for message in messages:
        schema = message.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[message.__name__] = schema
    return schemas


def _header_param(name: str) -> dict[str, Any]:
    return {
        "in": "header",
        "name": name,
        "required": False,
        "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": name.title()},
    }


_INVALID = {
    "description": "Validation Error",
    "content": {
        "application/json": {
            "schema": {
                **validation_error_response_definition,
                "properties": {
                    "detail": {
                        "title": "Detail",
                        "type": "array",
                        "items": validation_error_definition,
                    }
                },
            }
        }
    },
}
_CONTEXT_HEADERS = [_header_param("traceparent"), _header_param("x-correlation-id")]


def _openapi(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Returns the route's OpenAPI parameters and 422 response, which FastAPI cannot infer
    because the endpoints read the request themselves."""
    return {"parameters": parameters, "responses": {"422": _INVALID}}


def _query_params(cls: type[BaseModel]) -> list[dict[str, Any]]:
    schema = cls.model_json_schema(ref_template="#/components/schemas/{model}")
    props = schema.get("properties", {})
    return [
        {
            "in": "query",
            "name": field.alias or name,
            "required": field.is_required(),
            "schema": props.get(field.alias or name, {}),
        }
        for name, field in cls.model_fields.items()
    ]


def _sequence_fields(cls: type[BaseModel]) -> frozenset[str]:
    found = set()
    for name, field in cls.model_fields.items():
        origin = get_origin(field.annotation)
        if origin in (list, tuple, set, frozenset) or field.annotation in (list, tuple, set):
            found.add(field.alias or name)
    return frozenset(found)


def _query_values(request: Request, sequences: frozenset[str]) -> dict[str, Any]:
    """Returns the query string as FastAPI passes it to a parameter model."""
    params = request.query_params
    values: dict[str, Any] = {}
    for key in params:
        if key in values:
            continue
        if key in sequences:
            values[key] = params.getlist(key)
        else:
            many = params.getlist(key)
            values[key] = many[0] if len(many) == 1 else many
    return values


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
        include_in_schema=not handler.internal,
        name=f"{runtime.name}.{name}",
        summary=f"{name} ({runtime.name} command)",
        description=handler.fn.__doc__ or "",
        response_model=CommandResponse,
        response_class=JSONResponse,
        tags=[runtime.name],
        openapi_extra=_openapi([_header_param("Idempotency-Key"), *_CONTEXT_HEADERS]),
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
    sequences = _sequence_fields(cls)

    async def endpoint(request: Request) -> Response:
        ctx = await context(request)
        runtime.queries.screen(ctx.principal, handler)  # before the parameters are validated
        try:
            params = cls.model_validate_strings(_query_values(request, sequences), strict=True)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for err in errors:
                err["loc"] = ("query", *err["loc"])
            raise RequestValidationError(errors) from None
        raw_token = request.headers.get("x-consistency-token")
        token = ConsistencyToken.decode(raw_token) if raw_token else None
        timeout = _timeout(request.headers.get("x-consistency-timeout"), settings)
        answer = await runtime.queries.ask(params, ctx, token=token, timeout=timeout)
        if response_model is None:
            answer = jsonable_encoder(answer)
        return JSONResponse(answer)

    parameters = [
        *_query_params(cls),
        _header_param("x-consistency-token"),
        _header_param("x-consistency-timeout"),
        *_CONTEXT_HEADERS,
    ]
    router.add_api_route(
        f"/queries/{name}",
        endpoint,
        methods=["GET"],
        name=f"{runtime.name}.{name}",
        summary=f"{name} ({runtime.name} query)",
        description=handler.fn.__doc__ or "",
        response_model=response_model,
        tags=[runtime.name],
        openapi_extra=_openapi(parameters),
    )
