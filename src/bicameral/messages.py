"""Commands, queries and events: typed, immutable pydantic models with stable type names.

A message's type name is ``<name>.v<version>``, given in the class statement::

    class ProductRegistered(Event, name="inventory.ProductRegistered", version=1):
        sku: str

``name`` defaults to the class name. The name, not the Python path, is what is stored and sent,
so classes can move between modules without breaking old events.

Events stored under an older version are lifted to the current class by upcasters, one per
version step, declared with ``Service.upcaster``; ``MessageRegistry.upcast`` runs the chain.

Commands and queries come from outside, so they validate strictly: a JSON string or boolean is
never taken for a number, nor a number for a string (``validate_json`` also holds nested models
to that). Events are facts the service recorded itself; they are decoded from what was stored
(JSON, where a tuple is a list and a datetime a string) without that strictness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    "Upcaster",
    "split_type",
    "validate_json",
    "validate_message",
]

M = TypeVar("M", bound="Message")
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Returns the payload of version ``n + 1`` of an event from the stored payload of version n."""


def split_type(type_name: str) -> tuple[str, int]:
    """Returns the name and version of a stored type name (``inventory.StockReceived.v1``).

    A type name without a ``.v<n>`` suffix is version 0.
    """
    name, dot_v, version = type_name.rpartition(".v")
    if dot_v and version.isdigit():
        return name, int(version)
    return type_name, 0


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
    """Maps type names to message classes, so stored or received data can be decoded.

    It also holds the upcasters: an event stored as ``name.v1`` is read as the current class
    of ``name`` (the highest version registered) after each step's upcaster has run.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, type[Message]] = {}
        self._current: dict[str, type[Message]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._fresh: set[str] = set()

    def register(self, cls: type[M]) -> type[M]:
        """Writes ``cls`` under its type name; refuses a different class under the same name."""
        known = self._by_type.get(cls.type_name)
        if known is not None and known is not cls:
            raise ConfigurationError(
                f"type name {cls.type_name!r} is used by both {known.__qualname__} and "
                f"{cls.__qualname__}",
            )
        self._by_type[cls.type_name] = cls
        current = self._current.get(cls.message_name)
        if current is None or current.schema_version < cls.schema_version:
            self._current[cls.message_name] = cls
            self._fresh.discard(current.type_name if current is not None else "")
            self._fresh.add(cls.type_name)
        return cls

    def add_upcaster(self, name: str, from_version: int, fn: Upcaster) -> None:
        """Writes the upcaster from version ``from_version`` of event ``name`` to the next one."""
        if from_version < 0:
            raise ConfigurationError(f"upcaster of {name}: from_version must be 0 or more")
        if (name, from_version) in self._upcasters:
            raise ConfigurationError(f"two upcasters from {name}.v{from_version}")
        self._upcasters[(name, from_version)] = fn

    def get(self, type_name: str) -> type[Message] | None:
        """Returns the class registered under ``type_name``, or None."""
        return self._by_type.get(type_name)

    def current(self, name: str) -> type[Message] | None:
        """Returns the newest class registered under message ``name``, or None."""
        return self._current.get(name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_type

    def _problem(self, type_name: str) -> str | None:
        """Returns why a stored ``type_name`` cannot be read as a current class, or None."""
        name, version = split_type(type_name)
        cls = self._current.get(name)
        if cls is None:
            return f"no class is registered under {name!r}"
        if version > cls.schema_version:
            return f"it is newer than the code's {cls.type_name}"
        for step in range(version, cls.schema_version):
            if (name, step) not in self._upcasters:
                return f"no upcaster from {name}.v{step} to v{step + 1}"
        return None

    def upcast(self, type_name: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Returns the current type name and payload of an event stored as ``type_name``.

        Types of the current class, and names no class is registered under, come back as they
        are; an older version goes through each step's upcaster. Raises UnknownMessageError
        when a step has no upcaster or the stored version is newer than the code's.
        """
        if type_name in self._fresh:
            return type_name, data
        cls = self._current.get(split_type(type_name)[0])
        if cls is None:
            return type_name, data
        problem = self._problem(type_name)
        if problem is not None:
            raise UnknownMessageError(f"cannot read {type_name}: {problem}")
        name, version = split_type(type_name)
        for step in range(version, cls.schema_version):
            data = self._upcasters[(name, step)](dict(data))
        return cls.type_name, data

    def unreadable(self, type_names: Iterable[str]) -> dict[str, str]:
        """Returns the stored type names the code cannot read as a current class, with why."""
        found: dict[str, str] = {}
        for type_name in type_names:
            problem = self._problem(type_name)
            if problem is not None:
                found[type_name] = problem
        return found

    def decode(self, type_name: str, data: Any) -> Message:
        """Returns the message of ``type_name`` built from ``data``, upcast if stored older."""
        cls = self._by_type.get(type_name)
        if (cls is None or self._current[cls.message_name] is not cls) and isinstance(data, dict):
            type_name, data = self.upcast(type_name, data)
            cls = self._by_type.get(type_name)
        if cls is None:
            raise UnknownMessageError(f"unknown message type {type_name!r}")
        return validate_message(cls, data)
