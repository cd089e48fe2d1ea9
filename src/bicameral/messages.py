"""Commands, queries and events: typed, immutable pydantic models with stable type names.

A message's type name is ``<name>.v<version>``, given in the class statement::

    class ProductRegistered(Event, name="inventory.ProductRegistered", version=1):
        sku: str

``name`` defaults to the class name. The name, not the Python path, is what is stored and sent,
so classes can move between modules without breaking old events.

Commands and queries come from outside, so they validate strictly: a JSON string or boolean is
never taken for a number, nor a number for a string (``validate_json`` also holds nested models
to that). Events are facts the service recorded itself; they are decoded from what was stored
(JSON, where a tuple is a list and a datetime a string) without that strictness.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from bicameral.errors import ConfigurationError, InvalidMessageError, UnknownMessageError

__all__ = [
    "Command",
    "Event",
    "Message",
    "MessageRegistry",
    "Query",
    "validate_json",
    "validate_message",
]

M = TypeVar("M", bound="Message")


class Message(BaseModel):
    """Base of every message: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_name: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, *, name: str | None = None, version: int = 1, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.message_name = name or cls.__name__
        cls.schema_version = version
        cls.type_name = f"{cls.message_name}.v{version}"


class Command(Message):
    """A request to change state; handled by exactly one command handler."""

    model_config = ConfigDict(strict=True)


class Query(Message):
    """A request to read state; served only from read models."""

    model_config = ConfigDict(strict=True)


class Event(Message):
    """A fact that happened; appended to a stream and never changed."""


def validate_message(cls: type[M], data: Any, where: str = "") -> M:
    """Returns ``cls`` built from ``data``, or raises InvalidMessageError naming the fields.

    ``where`` (``"body"``, ``"query"``) is prepended to each field's location.
    """
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        raise _invalid(cls, exc, where) from None


def validate_json(cls: type[M], raw: bytes | str, where: str = "body") -> M:
    """Returns ``cls`` built from a JSON document, strictly, or raises InvalidMessageError.

    Strict all the way down, nested models included: ``"12"`` and ``true`` are not numbers,
    ``12`` is not a string. An empty document is ``{}``.
    """
    if not raw.strip():
        raw = b"{}"
    try:
        return cls.model_validate_json(raw, strict=True)
    except PydanticValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors(include_url=False)):
            raise InvalidMessageError(
                "the request body is not valid JSON",
                [{"loc": [where], "msg": "not valid JSON", "type": "json_invalid"}],
            ) from None
        raise _invalid(cls, exc, where) from None


def _invalid(cls: type[Message], exc: PydanticValidationError, where: str) -> InvalidMessageError:
    prefix = [where] if where else []
    errors = [
        {"loc": prefix + list(err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    fields = ", ".join(
        ".".join(str(p) for p in e["loc"][len(prefix) :]) or where or "message" for e in errors
    )
    return InvalidMessageError(f"invalid {cls.message_name}: {fields}", errors)


class MessageRegistry:
    """Maps type names to message classes, so stored or received data can be decoded."""

    def __init__(self) -> None:
        self._by_type: dict[str, type[Message]] = {}

    def register(self, cls: type[M]) -> type[M]:
        """Writes ``cls`` under its type name; refuses a different class under the same name."""
        known = self._by_type.get(cls.type_name)
        if known is not None and known is not cls:
            raise ConfigurationError(
                f"type name {cls.type_name!r} is used by both {known.__qualname__} and "
                f"{cls.__qualname__}",
            )
        self._by_type[cls.type_name] = cls
        return cls

    def get(self, type_name: str) -> type[Message] | None:
        """Returns the class registered under ``type_name``, or None."""
        return self._by_type.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_type

    def decode(self, type_name: str, data: Any) -> Message:
        """Returns the message of ``type_name`` built from ``data``."""
        cls = self._by_type.get(type_name)
        if cls is None:
            raise UnknownMessageError(f"unknown message type {type_name!r}")
        return validate_message(cls, data)
