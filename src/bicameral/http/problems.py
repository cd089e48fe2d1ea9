"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from bicameral.errors import (
    AuthenticationError,
    BicameralError,
    InvalidMessageError,
    MessageError,
    OverloadedError,
    PayloadTooLargeError,
)

__all__ = ["install_problem_handlers", "problem"]

log = logging.getLogger("bicameral.http")
PROBLEM_JSON = "application/problem+json"


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name.removesuffix("Error")).lower()


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type: str = "about:blank",
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Returns a problem+json response."""
    body: dict[str, Any] = {"type": type, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in errors
    ]


def from_error(exc: BicameralError, instance: str | None = None) -> JSONResponse:
    """Returns the problem response of a bicameral error."""
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidMessageError) or (isinstance(exc, MessageError) and exc.errors):
        extra["errors"] = _field_errors(exc.errors)
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, PayloadTooLargeError):
        headers["Connection"] = "close"  # the rest of the body is never read
    if exc.status == 503:
        headers["Retry-After"] = str(exc.retry_after if isinstance(exc, OverloadedError) else 1)
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        type=f"urn:bicameral:problem:{_slug(type(exc).__name__)}",
        instance=instance,
        headers=headers or None,
        **extra,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Makes every error ``app`` returns a problem+json document, never a traceback."""

    @app.exception_handler(BicameralError)
    async def bicameral_error(request: Request, exc: BicameralError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return from_error(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(list(exc.errors()))
        fields = ", ".join(".".join(e["loc"][1:]) or e["loc"][0] for e in errors if e["loc"])
        return problem(
            422,
            "Invalid message",
            f"invalid fields: {fields}",
            type="urn:bicameral:problem:invalid-message",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            str(exc.detail),
            instance=request.url.path,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(
            500, "Internal error", "the server failed; see its log", instance=request.url.path
        )


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Invalid message",
    503: "Service unavailable",
}
