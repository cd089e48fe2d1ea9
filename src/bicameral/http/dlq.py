"""``/admin/dlq``: parked events over HTTP, for the admin role (see ``bicameral.parking``).

The same operations as ``bicameral dlq``: list, show, retry, skip. An unknown sequence id
answers 404, a retry whose sequence fails again 409 (what is left stays parked), a skip
without a reason or a list filtered by an unknown ``service`` 422 (an empty filter is no
filter); all as problem+json.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from bicameral.context import Principal
from bicameral.envelope import to_cloudevent
from bicameral.errors import InvalidMessageError
from bicameral.http.problems import problem
from bicameral.parking import ParkedSequence
from bicameral.runtime.dlq import DeadLetters
from bicameral.runtime.node import Node

__all__ = ["ParkedDetail", "ParkedSummary", "RetryOutcome", "SkipBody", "SkipRecord", "dlq_router"]


class ParkedSummary(BaseModel):
    """One parked sequence: a consumer's events of one stream, waiting behind a failure."""

    id: str
    service: str
    consumer: str = Field(description="The projection checkpoint or reaction that failed.")
    stream: str = Field(description="The stream (or partition key) whose events wait.")
    first_position: int
    events: int = Field(description="How many events are parked in the sequence.")
    event_type: str = Field(description="The type of the first parked event.")
    error: str = Field(description="The exception class of the last failure.")
    message: str
    attempts: int
    first_failed: str
    last_failed: str


class ParkedDetail(ParkedSummary):
    """A parked sequence with its events (CloudEvents JSON) and the last traceback."""

    traceback: str
    parked_events: list[dict[str, Any]]


class SkipRecord(BaseModel):
    """The audit record of a sequence skipped on purpose."""

    id: str
    service: str
    consumer: str
    stream: str
    events: int
    event_ids: list[str]
    first_position: int
    last_position: int
    error: str
    message: str
    reason: str
    by: str
    at: str


class RetryOutcome(BaseModel):
    """A retry that left nothing parked."""

    id: str
    applied: int = Field(description="Events applied and removed from the sequence.")
    left: int = Field(description="Events still parked (0).")
    done: bool


class SkipBody(BaseModel):
    """Why the sequence may be dropped (kept in the audit)."""

    reason: str = Field(min_length=1)


def _detail(seq: ParkedSequence) -> dict[str, Any]:
    return {
        **seq.summary(),
        "traceback": seq.traceback,
        "parked_events": [to_cloudevent(e) for e in seq.events],
    }


_ADMIN_ONLY: dict[str, Any] = {"security": [{"bearer": []}], "x-roles": ["admin"]}
"""What the OpenAPI document says of every ``/admin/dlq`` operation: role admin only."""


def _described(text: str) -> str:
    return f"{text}\n\nWho may call it (bearer token): role `admin`."


def _problem_schema(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"type": "object"}}},
    }


async def _skip_body(request: Request) -> SkipBody:
    raw = await request.body()
    try:
        return SkipBody.model_validate(orjson.loads(raw) if raw.strip() else {})
    except orjson.JSONDecodeError as exc:
        raise InvalidMessageError(
            "the request body is not valid JSON",
            [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}],
        ) from None
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise InvalidMessageError("a skip needs a reason", errors) from None


def dlq_router(node: Node, admin: Callable[[Request], Awaitable[Principal]]) -> APIRouter:
    """Returns the ``/admin/dlq`` routes over ``node``'s services, each needing ``admin``."""
    router = APIRouter(
        prefix="/admin/dlq",
        tags=["operations"],
        dependencies=[Depends(admin)],
        responses={
            401: _problem_schema("No valid bearer token."),
            403: _problem_schema("The caller lacks role `admin`."),
        },
    )
    letters = DeadLetters(node)
    missing: dict[int | str, dict[str, Any]] = {
        404: _problem_schema("No parked sequence has this id.")
    }

    @router.get(
        "",
        summary="List parked sequences",
        description=_described(
            "One entry per parked sequence, oldest failure first; with `skipped=true`, "
            "the audit records of skipped sequences instead. `service` and `consumer` filter "
            "(empty: no filter); a `service` no service has answers 422."
        ),
        response_model=list[ParkedSummary] | list[SkipRecord],
        responses={
            422: _problem_schema(
                "A filter is invalid: `service` names no service of this API (`errors` names "
                "the query field), or `skipped` is not a boolean."
            )
        },
        openapi_extra=_ADMIN_ONLY,
    )
    async def list_parked(
        service: str | None = None, consumer: str | None = None, skipped: bool = False
    ) -> JSONResponse:
        """One entry per parked sequence, oldest failure first; with ``skipped=true``, the
        audit records of skipped sequences instead. An empty ``service`` or ``consumer`` is
        no filter; an unknown ``service`` answers 422."""
        if skipped:
            records = await letters.skipped(service, consumer)
            return JSONResponse([r.to_dict() for r in records])
        found = await letters.sequences(service, consumer)
        return JSONResponse([f.sequence.summary() for f in found])

    @router.get(
        "/{sequence}",
        summary="Show a parked sequence",
        description=_described(
            "The sequence's events, with payload and metadata, and its last traceback."
        ),
        response_model=ParkedDetail,
        responses=missing,
        openapi_extra=_ADMIN_ONLY,
    )
    async def show_parked(sequence: str) -> JSONResponse:
        """The sequence's events, with payload and metadata, and its last traceback."""
        return JSONResponse(_detail((await letters.find(sequence)).sequence))

    @router.post(
        "/{sequence}/retry",
        summary="Retry a parked sequence",
        description=_described(
            "Runs the sequence, in order, through the code deployed now; what succeeds is "
            "removed, what fails again stays parked with one more attempt counted (409)."
        ),
        response_model=RetryOutcome,
        responses={
            **missing,
            409: _problem_schema("An event failed again; it and those behind it stay parked."),
        },
        openapi_extra=_ADMIN_ONLY,
    )
    async def retry_parked(sequence: str) -> JSONResponse:
        """Runs the sequence, in order, through the code deployed now; what succeeds is
        removed, what fails again stays parked with one more attempt counted (409)."""
        result = await letters.retry(sequence)
        if result.ok:
            return JSONResponse(
                {"id": sequence, "applied": result.applied, "left": 0, "done": True}
            )
        failure = result.failure
        return problem(
            409,
            "Parked sequence failed again",
            f"sequence {sequence} failed again after {result.applied} event(s) applied: "
            f"{failure.error if failure else ''}: {failure.message if failure else ''}",
            type="urn:bicameral:problem:retry-failed",
            id=sequence,
            applied=result.applied,
            left=result.left,
            done=False,
            error=failure.error if failure else "",
            message=failure.message if failure else "",
        )

    @router.post(
        "/{sequence}/skip",
        summary="Skip a parked sequence",
        description=_described(
            "Drops the sequence on purpose; who (the caller), when and why is recorded."
        ),
        response_model=SkipRecord,
        responses=missing,
        openapi_extra={
            **_ADMIN_ONLY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": SkipBody.model_json_schema()}},
            },
        },
    )
    async def skip_parked(
        sequence: str, request: Request, principal: Annotated[Principal, Depends(admin)]
    ) -> JSONResponse:
        """Drops the sequence on purpose; who (the caller), when and why is recorded."""
        body = await _skip_body(request)
        record = await letters.skip(sequence, body.reason, principal.subject or "admin")
        return JSONResponse(record.to_dict())

    return router
