"""The one exception tree of bicameral.

Every error the library raises on purpose is a ``BicameralError``; driver errors are translated
into this tree at the adapter edge. The HTTP layer maps each class to one status code::

    BicameralError
    ├── ConfigurationError            bad settings or wiring (raised at start, never per request)
    ├── BackendError                  a database or broker failed or is unreachable      503
    │   └── OverloadedError           too much work waits already (Retry-After)          503
    ├── DocumentError                 a read store cannot hold a document's values
    ├── MessageError                  a request the HTTP edge refuses (a header, the query  400
    │   │                             string's size); names the fields
    │   ├── UnknownMessageError       no command or query of that name                   404
    │   ├── InvalidMessageError       the message does not validate; names the fields    422
    │   ├── PayloadTooLargeError      the body is larger than ``[http] max_body_bytes``  413
    │   └── UnsupportedMediaTypeError a command's body is not ``application/json``       415
    ├── NotFoundError                 the entity a message names does not exist          404
    ├── ConflictError                                                                    409
    │   ├── ConcurrencyError          another writer moved the stream first (retryable)
    │   └── RuleViolation             the command breaks a business rule
    ├── IdempotencyKeyReusedError     same Idempotency-Key, other body                   422
    ├── NotCaughtUpError              a read model has not reached a consistency token   503
    └── AccessError
        ├── AuthenticationError       no credentials, or bad ones                        401
        └── PermissionDeniedError     the principal may not do this                      403
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AccessError",
    "AuthenticationError",
    "BackendError",
    "BicameralError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "DocumentError",
    "FieldError",
    "IdempotencyKeyReusedError",
    "InvalidMessageError",
    "MessageError",
    "NotCaughtUpError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RuleViolation",
    "UnknownMessageError",
    "UnsupportedMediaTypeError",
]

FieldError = Mapping[str, Any]
"""One field at fault: ``{"loc": [...], "msg": "...", "type": "..."}``."""


class BicameralError(Exception):
    """Base of every error bicameral raises on purpose."""

    status: int = 500
    title: str = "Internal error"

    @property
    def detail(self) -> str:
        """Returns the human-readable explanation given when raised."""
        return str(self.args[0]) if self.args else self.title


class ConfigurationError(BicameralError):
    """Settings or wiring are wrong; raised at start-up."""

    title = "Configuration error"


class BackendError(BicameralError):
    """A database or broker failed or could not be reached."""

    status = 503
    title = "Backend unavailable"


class OverloadedError(BackendError):
    """Too much work waits already (a writer's queue is full); try again in ``retry_after`` s."""

    title = "Overloaded"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DocumentError(BicameralError):
    """A read store refused a document: a value it cannot hold (poison, never transient)."""

    title = "Document not storable"


class MessageError(BicameralError):
    """A message or request could not be understood; ``errors`` names each field at fault."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors)


class UnknownMessageError(MessageError):
    """No command or query of that name is registered."""

    status = 404
    title = "Unknown message"


class InvalidMessageError(MessageError):
    """A message failed validation; ``errors`` names each field at fault."""

    status = 422
    title = "Invalid message"


class PayloadTooLargeError(MessageError):
    """A request body is larger than the server accepts; it was not read."""

    status = 413
    title = "Payload too large"


class UnsupportedMediaTypeError(MessageError):
    """A command's body is not JSON."""

    status = 415
    title = "Unsupported media type"


class NotFoundError(BicameralError):
    """The entity a message names does not exist."""

    status = 404
    title = "Not found"


class ConflictError(BicameralError):
    """The command conflicts with the current state."""

    status = 409
    title = "Conflict"


class ConcurrencyError(ConflictError):
    """Another writer appended to the stream first; retrying may succeed."""

    title = "Concurrent modification"

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, expected {expected}",
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class RuleViolation(ConflictError):
    """The command would break a business rule."""

    title = "Business rule violated"


class IdempotencyKeyReusedError(BicameralError):
    """An Idempotency-Key was sent again with a different body."""

    status = 422
    title = "Idempotency key reused"


class NotCaughtUpError(BicameralError):
    """A read model did not reach the positions of a consistency token in time."""

    status = 503
    title = "Read model not caught up"


class AccessError(BicameralError):
    """The caller may not do this."""

    status = 403
    title = "Forbidden"


class AuthenticationError(AccessError):
    """No credentials were given, or they are not valid."""

    status = 401
    title = "Unauthorized"


class PermissionDeniedError(AccessError):
    """The authenticated principal lacks the right for this message."""

    status = 403
    title = "Forbidden"
