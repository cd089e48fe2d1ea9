"""Routes for one service: ``POST /{service}/commands/{Name}``, ``GET /{service}/queries/{Name}``.

This module builds endpoint functions whose annotations are the message classes themselves, so
FastAPI validates them and shows each message's schema in the OpenAPI document (hence no
``from __future__ import annotations`` here).
"""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bicameral.consistency import ConsistencyToken
from bicameral.context import MessageContext, Principal
from bicameral.errors import InvalidMessageError, UnknownMessageError
from bicameral.messages import validate_message
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


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidMessageError(
            "the request body is not valid JSON",
            [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}],
        ) from None


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


def service_router(
    runtime: ServiceRuntime, settings: Settings, authenticate: Authenticator
) -> APIRouter:
    """Returns the router of one service's command and query routes."""
    router = APIRouter(prefix=f"/{runtime.name}")

    async def context(
        request: Request,
        traceparent: Annotated[str | None, Header()] = None,
        x_correlation_id: Annotated[str | None, Header()] = None,
    ) -> MessageContext:
        principal = await authenticate(request)
        base = MessageContext(principal=principal, traceparent=traceparent)
        if x_correlation_id:
            base = MessageContext(
                principal=principal, traceparent=traceparent, correlation_id=x_correlation_id
            )
        return base

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


def _command_route(
    router: APIRouter, runtime: ServiceRuntime, handler: CommandHandler, context: Any
) -> None:
    cls = handler.command
    name = cls.message_name

    async def endpoint(
        request: Request,
        ctx: Annotated[MessageContext, Depends(context)],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        if handler.internal:
            raise refuse(ctx.principal, f"{name} (internal to {runtime.name})")
        runtime.commands.screen(ctx.principal, handler)
        body = validate_message(cls, await _json_body(request), "body")
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
        tags=[runtime.name],
    )


def _query_route(
    router: APIRouter,
    runtime: ServiceRuntime,
    handler: QueryHandler,
    settings: Settings,
    context: Any,
) -> None:
    cls = handler.query
    name = cls.message_name
    result = handler.result
    response_model = result if isinstance(result, type) and issubclass(result, BaseModel) else None

    async def screened(ctx: Annotated[MessageContext, Depends(context)]) -> MessageContext:
        runtime.queries.screen(ctx.principal, handler)  # before the parameters are validated
        return ctx

    async def endpoint(
        params: Annotated[cls, Query()],  # type: ignore[valid-type]
        ctx: Annotated[MessageContext, Depends(screened)],
        x_consistency_token: Annotated[str | None, Header()] = None,
        x_consistency_timeout: Annotated[str | None, Header()] = None,
    ) -> Any:
        token = ConsistencyToken.decode(x_consistency_token) if x_consistency_token else None
        timeout = _timeout(x_consistency_timeout, settings)
        return await runtime.queries.ask(params, ctx, token=token, timeout=timeout)

    router.add_api_route(
        f"/queries/{name}",
        endpoint,
        methods=["GET"],
        name=f"{runtime.name}.{name}",
        summary=f"{name} ({runtime.name} query)",
        description=handler.fn.__doc__ or "",
        response_model=response_model,
        tags=[runtime.name],
    )
