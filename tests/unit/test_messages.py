"""Messages: type names, validation errors naming the field, the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from bicameral import (
    Command,
    ConfigurationError,
    Event,
    InvalidMessageError,
    MessageRegistry,
    Query,
    UnknownMessageError,
)
from bicameral.messages import validate_json, validate_message


class Ping(Command):
    n: int


class Part(BaseModel):
    count: int
    label: str


class Order(Command):
    count: int
    label: str
    flag: bool = False
    parts: list[Part] = []
    at: datetime | None = None


class Find(Query):
    count: int


class Stamped(Event, name="test.Stamped"):
    at: datetime
    tags: tuple[str, ...]


class Ponged(Event, name="test.Ponged", version=2):
    n: int


def test_type_name_includes_name_and_version() -> None:
    assert Ping.type_name == "Ping.v1"
    assert Ponged.type_name == "test.Ponged.v2"


def test_invalid_message_names_the_field() -> None:
    with pytest.raises(InvalidMessageError) as info:
        validate_message(Ping, {"n": "x"}, "body")
    assert info.value.errors[0]["loc"] == ["body", "n"]
    assert "n" in info.value.detail


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidMessageError):
        validate_message(Ping, {"n": 1, "extra": 2})


def test_registry_decodes_and_refuses_two_classes_under_one_name() -> None:
    registry = MessageRegistry()
    registry.register(Ponged)
    assert registry.decode("test.Ponged.v2", {"n": 3}) == Ponged(n=3)

    class Other(Event, name="test.Ponged", version=2):
        n: int

    with pytest.raises(ConfigurationError):
        registry.register(Other)


def test_messages_are_immutable() -> None:
    ping = Ping(n=1)
    with pytest.raises(ValidationError):
        ping.n = 2  # type: ignore[misc]


def test_a_message_name_defaults_to_the_class_name_at_version_one() -> None:
    assert Ping.message_name == "Ping"
    assert Ping.schema_version == 1
    assert Ponged.message_name == "test.Ponged"


def test_registering_the_same_class_twice_is_harmless() -> None:
    registry = MessageRegistry()
    registry.register(Ponged)
    registry.register(Ponged)
    assert "test.Ponged.v2" in registry
    assert registry.get("test.Ponged.v2") is Ponged
    assert registry.get("test.Ponged.v1") is None


def test_decoding_an_unknown_type_is_an_unknown_message() -> None:
    with pytest.raises(UnknownMessageError):
        MessageRegistry().decode("nope.v1", {})


def test_decoding_bad_data_names_the_field() -> None:
    registry = MessageRegistry()
    registry.register(Ponged)
    with pytest.raises(InvalidMessageError) as info:
        registry.decode("test.Ponged.v2", {"n": "many"})
    assert [e["loc"] for e in info.value.errors] == [["n"]]


def test_a_missing_field_is_named_with_its_location() -> None:
    with pytest.raises(InvalidMessageError) as info:
        validate_message(Ping, {}, "query")
    assert info.value.errors == [
        {"loc": ["query", "n"], "msg": "Field required", "type": "missing"}
    ]
    assert info.value.status == 422


@given(st.integers(-(2**63), 2**63 - 1))
def test_a_message_survives_its_json_form(n: int) -> None:
    ping = Ping(n=n)
    assert validate_message(Ping, ping.model_dump(mode="json")) == ping


WRONG_TYPES = [
    ("count", "12"),
    ("count", True),
    ("count", 1.5),
    ("count", None),
    ("label", 12),
    ("label", False),
    ("flag", "true"),
    ("flag", 1),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_a_command_takes_no_string_for_a_number_nor_a_number_for_a_string(
    field: str, value: object
) -> None:
    data = {"count": 1, "label": "x"} | {field: value}
    with pytest.raises(InvalidMessageError) as info:
        validate_json(Order, json.dumps(data).encode())
    assert [e["loc"] for e in info.value.errors] == [["body", field]]
    with pytest.raises(InvalidMessageError):
        validate_message(Order, data)
    with pytest.raises(ValidationError):
        Order(**data)


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES[:5])
def test_nested_models_of_a_body_are_strict_too(field: str, value: object) -> None:
    part = {"count": 1, "label": "x"} | {field: value}
    body = json.dumps({"count": 1, "label": "x", "parts": [part]}).encode()
    with pytest.raises(InvalidMessageError) as info:
        validate_json(Order, body)
    assert [e["loc"] for e in info.value.errors] == [["body", "parts", 0, field]]


def test_a_query_is_strict() -> None:
    with pytest.raises(ValidationError):
        Find.model_validate({"count": "3"})
    assert Find.model_validate({"count": 3}).count == 3


def test_a_json_body_still_reads_dates_and_an_empty_body_is_an_empty_object() -> None:
    body = b'{"count": 1, "label": "x", "at": "2024-05-01T10:00:00Z"}'
    assert validate_json(Order, body).at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(InvalidMessageError) as info:
        validate_json(Order, b"  ")
    assert {e["loc"][-1] for e in info.value.errors} == {"count", "label"}


@pytest.mark.parametrize("raw", [b"{", b"not json", b'{"count": 1,}', b"\xff"])
def test_a_body_that_is_not_json_is_named_as_such(raw: bytes) -> None:
    with pytest.raises(InvalidMessageError) as info:
        validate_json(Order, raw)
    assert info.value.detail == "the request body is not valid JSON"
    assert info.value.errors[0]["loc"] == ["body"]


def test_events_decode_from_their_stored_json_form() -> None:
    """Stored events are JSON: a datetime is a string and a tuple a list; they still decode."""
    event = Stamped(at=datetime(2024, 5, 1, tzinfo=UTC), tags=("a", "b"))
    registry = MessageRegistry()
    registry.register(Stamped)
    assert registry.decode(Stamped.type_name, event.model_dump(mode="json")) == event


@given(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))
def test_a_command_survives_its_json_form(count: int, label: str) -> None:
    order = Order(count=count, label=label, parts=[Part(count=count, label=label)])
    assert validate_json(Order, order.model_dump_json()) == order
