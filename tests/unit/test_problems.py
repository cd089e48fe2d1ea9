"""Every error becomes an RFC 9457 problem document with the status the error tree promises."""

from __future__ import annotations

import orjson
import pytest

from bicameral import (
    AuthenticationError,
    BackendError,
    BicameralError,
    ConcurrencyError,
    IdempotencyKeyReusedError,
    InvalidMessageError,
    NotCaughtUpError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RuleViolation,
    UnknownMessageError,
)
from bicameral.http.problems import from_error


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (BackendError("db down"), 503, "backend"),
        (OverloadedError("queue full"), 503, "overloaded"),
        (UnknownMessageError("no such"), 404, "unknown-message"),
        (InvalidMessageError("bad"), 422, "invalid-message"),
        (NotFoundError("none"), 404, "not-found"),
        (ConcurrencyError("s-1", 1, 2), 409, "concurrency"),
        (RuleViolation("no"), 409, "rule-violation"),
        (IdempotencyKeyReusedError("again"), 422, "idempotency-key-reused"),
        (NotCaughtUpError("later"), 503, "not-caught-up"),
        (AuthenticationError("who"), 401, "authentication"),
        (PermissionDeniedError("no"), 403, "permission-denied"),
        (BicameralError("oops"), 500, "bicameral"),
    ],
)
def test_each_error_has_its_status_and_problem_type(
    error: BicameralError, status: int, slug: str
) -> None:
    response = from_error(error, "/svc/commands/X")
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    body = orjson.loads(response.body)
    assert body["type"] == f"urn:bicameral:problem:{slug}"
    assert body["status"] == status
    assert body["title"] == error.title
    assert body["detail"] == error.detail
    assert body["instance"] == "/svc/commands/X"


def test_an_invalid_message_lists_the_fields_at_fault() -> None:
    error = InvalidMessageError("bad", [{"loc": ["body", "qty", 0], "msg": "m", "type": "t"}])
    body = orjson.loads(from_error(error).body)
    assert body["errors"] == [{"loc": ["body", "qty", "0"], "msg": "m", "type": "t"}]


def test_a_conflict_names_the_stream_and_versions() -> None:
    body = orjson.loads(from_error(ConcurrencyError("product-a", 3, 4)).body)
    assert "product-a" in body["detail"]
    assert "3" in body["detail"]


def test_unavailable_answers_say_when_to_retry_and_401_says_how_to_authenticate() -> None:
    assert from_error(NotCaughtUpError("x")).headers["Retry-After"] == "1"
    assert from_error(BackendError("x")).headers["Retry-After"] == "1"
    assert from_error(AuthenticationError("x")).headers["WWW-Authenticate"] == "Bearer"
    assert "Retry-After" not in from_error(RuleViolation("x")).headers


def test_an_overloaded_answer_says_when_to_retry() -> None:
    response = from_error(OverloadedError("2000 appends wait", retry_after=3))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
