"""Messages: type names, validation errors naming the field, the registry."""

from __future__ import annotations

import pytest

from bicameral import Command, ConfigurationError, Event, InvalidMessageError, MessageRegistry
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
