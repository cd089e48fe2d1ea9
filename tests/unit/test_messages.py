"""Messages: type names, validation errors naming the field, the registry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bicameral import (
    Command,
    ConfigurationError,
    Event,
    InvalidMessageError,
    MessageRegistry,
    UnknownMessageError,
)
from bicameral.messages import validate_message


class Ping(Command):
    n: int


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
