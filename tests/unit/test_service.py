"""Service declarations: handler signatures, injected parameters, and refused wirings."""

from __future__ import annotations

from typing import Any

import pytest

from bicameral import (
    Aggregate,
    Command,
    ConfigurationError,
    Envelope,
    Event,
    MessageContext,
    Principal,
    Projection,
    Query,
    ReadModel,
    Repository,
    Service,
    View,
)


class Thing(Aggregate):
    def apply(self, event: Event) -> None:
        pass


class Make(Command):
    id: str


class Look(Query):
    id: str


class Made(Event, name="things.Made"):
    id: str


class Shipped(Event, name="shipping.Shipped"):
    id: str


def make(cmd: Make, thing: Thing, things: Repository[Thing], ctx: MessageContext) -> None:
    pass


async def look(query: Look, reads: ReadModel, who: Principal) -> dict[str, Any]:
    return {}


def test_handler_parameters_are_recognised_by_annotation() -> None:
    svc = Service("things")
    assert svc.command(key="id")(make) is make
    svc.query(look)
    handler = svc.commands["Make"]
    assert [(p.kind, p.cls) for p in handler.params] == [
        ("aggregate", Thing),
        ("repository", Thing),
        ("context", None),
    ]
    assert handler.key is not None
    assert handler.key(Make(id="x1")) == "x1"
    assert not handler.is_async
    assert [p.kind for p in svc.queries["Look"].params] == ["readmodel", "principal"]
    assert svc.queries["Look"].is_async
    assert svc.queries["Look"].result == dict[str, Any]
    assert svc.registry.get("Make.v1") is Make


def test_a_key_may_be_a_function_of_the_command() -> None:
    svc = Service("things")
    svc.command(key=lambda cmd: f"{cmd.id}-x")(make)
    key = svc.commands["Make"].key
    assert key is not None
    assert key(Make(id="a")) == "a-x"


def no_params() -> None:
    pass


def unannotated(cmd, thing):  # type: ignore[no-untyped-def]
    pass


def query_first(q: Look) -> None:
    pass


def strange_param(cmd: Make, count: int) -> None:
    pass


def aggregate_without_key(cmd: Make, thing: Thing) -> None:
    pass


def unresolvable(cmd: Make, thing: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
    pass


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (no_params, "first parameter"),
        (unannotated, "first parameter"),
        (query_first, "Command"),
        (strange_param, "'count'"),
        (aggregate_without_key, "key="),
        (unresolvable, "NoSuchType"),
    ],
)
def test_a_bad_command_handler_signature_is_a_configuration_error(fn: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Service("things").command(fn)


def make_with_envelope(cmd: Make, env: Envelope) -> None:
    pass


def make_with_read_model(cmd: Make, reads: ReadModel) -> None:
    pass


def look_with_aggregate(query: Look, thing: Thing) -> None:
    pass


def react_with_context(event: Made, ctx: MessageContext) -> None:
    pass


def test_a_handler_may_take_only_what_its_side_provides() -> None:
    svc = Service("things")
    with pytest.raises(ConfigurationError, match="envelope"):
        svc.command(make_with_envelope)
    with pytest.raises(ConfigurationError, match="readmodel"):
        svc.command(make_with_read_model)
    with pytest.raises(ConfigurationError, match="aggregate"):
        svc.query(look_with_aggregate)
    with pytest.raises(ConfigurationError, match="context"):
        svc.on(Made)(react_with_context)
    assert not svc.commands
    assert not svc.queries
    assert not svc.reactions


def test_a_query_handler_must_take_a_query_first() -> None:
    def bad(cmd: Make, reads: ReadModel) -> None:
        pass

    with pytest.raises(ConfigurationError, match="Query"):
        Service("things").query(bad)


def test_two_handlers_for_one_message_are_refused() -> None:
    svc = Service("things")
    svc.command(key="id")(make)
    with pytest.raises(ConfigurationError, match="two handlers"):
        svc.command(key="id")(make)
    svc.query(look)
    with pytest.raises(ConfigurationError, match="two handlers"):
        svc.query(look)


def test_a_reaction_must_take_the_event_it_is_declared_for() -> None:
    svc = Service("things")

    def on_made(event: Made) -> None:
        pass

    with pytest.raises(ConfigurationError, match="Shipped"):
        svc.on(Shipped)(on_made)


def test_a_reaction_comes_from_the_service_named_by_its_event() -> None:
    svc = Service("things")

    def on_shipped(event: Shipped, env: Envelope) -> Make:
        return Make(id=event.id)

    def on_made(event: Made) -> None:
        pass

    svc.on(Shipped)(on_shipped)
    svc.on(Made, source="elsewhere")(on_made)
    assert [(r.name, r.source) for r in svc.reactions] == [
        ("things.on.shipping.Shipped", "shipping"),
        ("things.on.things.Made", "elsewhere"),
    ]
    assert [p.kind for p in svc.reactions[0].params] == ["envelope"]
    assert "shipping.Shipped.v1" in svc.registry


def test_a_reaction_keeps_its_name_when_its_function_is_renamed() -> None:
    svc = Service("things")

    def first(event: Made) -> None:
        pass

    def renamed(event: Made) -> None:
        pass

    svc.on(Made, name="note", retries=5)(first)
    other = Service("things")
    other.on(Made, name="note")(renamed)
    assert svc.reactions[0].name == other.reactions[0].name == "things.note"
    assert (svc.reactions[0].retries, other.reactions[0].retries) == (5, 3)


def test_two_reactions_of_one_identity_are_refused() -> None:
    svc = Service("things")

    def one(event: Made) -> None:
        pass

    def two(event: Made) -> None:
        pass

    svc.on(Made)(one)
    with pytest.raises(ConfigurationError, match=r"things\.on\.things\.Made"):
        svc.on(Made)(two)
    svc.on(Made, name="two")(two)
    with pytest.raises(ConfigurationError, match=r"things\.two"):
        svc.on(Made, name="two")(one)
    with pytest.raises(ConfigurationError, match="retries"):
        svc.on(Made, name="three", retries=-1)(two)
    assert [r.name for r in svc.reactions] == ["things.on.things.Made", "things.two"]


def test_two_projections_may_not_own_one_collection() -> None:
    svc = Service("things")
    svc.projection(Projection("a", collections={"things": []}))
    with pytest.raises(ConfigurationError, match="things"):
        svc.projection(Projection("b", collections={"things": [], "more": []}))


def test_a_projection_registers_the_events_it_folds() -> None:
    svc = Service("things")
    projection = Projection("a", collections={"things": []})

    @projection.on(Made)
    def made(event: Made, view: View) -> None:
        pass

    svc.projection(projection)
    assert svc.registry.get("things.Made.v1") is Made
    assert svc.projection_reading("things") is projection
    with pytest.raises(ConfigurationError):
        svc.projection_reading("nope")


def test_a_handler_declared_after_the_projection_still_registers_its_event() -> None:
    first, second = Service("things"), Service("more")
    projection = Projection("a", collections={"things": []})
    first.projection(projection)
    second.projection(projection)

    @projection.on(Made)
    def made(event: Made, view: View) -> None:
        pass

    assert first.registry.get("things.Made.v1") is Made
    assert second.registry.get("things.Made.v1") is Made


def test_a_later_handler_of_a_clashing_class_is_refused_at_once() -> None:
    svc = Service("things")
    projection = svc.projection(Projection("a", collections={"things": []}))
    svc.events(Made)

    class Other(Event, name="things.Made"):
        id: str

    with pytest.raises(ConfigurationError, match=r"things\.Made"):

        @projection.on(Other)
        def other(event: Other, view: View) -> None:
            pass


def test_a_query_reads_every_projection_unless_told() -> None:
    svc = Service("things")
    first = svc.projection(Projection("a", collections={"x": []}))
    second = svc.projection(Projection("b", collections={"y": []}))
    svc.query(look)
    assert svc.reads_of(svc.queries["Look"]) == (first, second)


def test_declared_events_are_registered() -> None:
    svc = Service("things")
    svc.events(Made, Shipped)
    assert svc.registry.get("things.Made.v1") is Made
    assert svc.registry.get("shipping.Shipped.v1") is Shipped
