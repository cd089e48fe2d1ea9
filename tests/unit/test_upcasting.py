"""Upcasting: stored payloads of older event versions lifted, step by step, to the current class."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import ConfigurationError, Event, MessageRegistry, Service, UnknownMessageError
from bicameral.envelope import Envelope, NewEvent, from_cloudevent, to_cloudevent, upcast
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.messages import split_type
from bicameral.ports import StreamAppend
from bicameral.workers.feeds import LogFeed


class Moved(Event, name="test.Moved", version=3):
    """v1 ``{to}``; v2 ``{destination}``; v3 ``{destination, by}``."""

    destination: str
    by: str


def registry() -> MessageRegistry:
    found = MessageRegistry()
    found.register(Moved)
    found.add_upcaster("test.Moved", 1, lambda d: {"destination": d["to"]})
    found.add_upcaster("test.Moved", 2, lambda d: {**d, "by": "nobody"})
    return found


def envelope(type_name: str, data: dict[str, Any]) -> Envelope:
    return Envelope("e1", type_name, "svc", "s-1", datetime.now(UTC), 1, 1, data, {"k": "v"})


def test_the_type_name_splits_into_name_and_version() -> None:
    assert split_type("test.Moved.v12") == ("test.Moved", 12)
    assert split_type("test.Moved") == ("test.Moved", 0)
    assert split_type("Ping.v1") == ("Ping", 1)


def test_an_old_version_goes_through_every_step_to_the_current_class() -> None:
    assert registry().upcast("test.Moved.v1", {"to": "x"}) == (
        "test.Moved.v3",
        {"destination": "x", "by": "nobody"},
    )
    assert registry().decode("test.Moved.v2", {"destination": "y"}) == Moved(
        destination="y", by="nobody"
    )


def test_the_current_version_and_unknown_names_come_back_unchanged() -> None:
    data = {"destination": "x", "by": "me"}
    assert registry().upcast("test.Moved.v3", data) == ("test.Moved.v3", data)
    assert registry().upcast("other.Thing.v1", {"a": 1}) == ("other.Thing.v1", {"a": 1})


@given(st.text(min_size=1))
def test_upcasting_never_changes_the_stored_payload(to: str) -> None:
    stored = {"to": to}
    registry().upcast("test.Moved.v1", stored)
    assert stored == {"to": to}


def test_a_missing_step_is_a_clear_error_naming_it() -> None:
    with pytest.raises(UnknownMessageError, match=r"no upcaster from test\.Moved\.v0 to v1"):
        registry().upcast("test.Moved.v0", {})
    with pytest.raises(UnknownMessageError, match=r"newer than the code.s test\.Moved\.v3"):
        registry().decode("test.Moved.v4", {})


def test_unreadable_lists_the_types_without_a_path_and_why() -> None:
    found = registry().unreadable(
        ["test.Moved.v0", "test.Moved.v1", "test.Moved.v3", "test.Moved.v9", "gone.Thing.v1"]
    )
    assert found == {
        "test.Moved.v0": "no upcaster from test.Moved.v0 to v1",
        "test.Moved.v9": "it is newer than the code's test.Moved.v3",
        "gone.Thing.v1": "no class is registered under 'gone.Thing'",
    }


def test_two_upcasters_for_one_step_are_refused() -> None:
    service = Service("svc")
    service.events(Moved)

    @service.upcaster(Moved, from_version=1)
    def first(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(ConfigurationError, match=r"two upcasters from test\.Moved\.v1"):
        service.upcaster("test.Moved", from_version=1)(first)


def test_an_upcast_envelope_keeps_its_place_and_may_name_the_stored_type() -> None:
    stored = envelope("test.Moved.v2", {"destination": "x"})
    plain, marked = upcast(stored, registry()), upcast(stored, registry(), mark=True)
    assert (plain.type, plain.data, plain.metadata) == (
        "test.Moved.v3",
        {"destination": "x", "by": "nobody"},
        {"k": "v"},
    )
    assert (plain.id, plain.position, plain.subject) == (stored.id, 1, "s-1")
    assert marked.metadata == {"k": "v", "stored_type": "test.Moved.v2"}
    doc = to_cloudevent(marked)
    assert (doc["type"], doc["storedtype"]) == ("test.Moved.v3", "test.Moved.v2")
    assert from_cloudevent(doc) == marked
    current = envelope("test.Moved.v3", {"destination": "x", "by": "me"})
    assert upcast(current, registry(), mark=True) is current


async def test_a_log_feed_hands_out_current_versions() -> None:
    store = MemoryEventStore("svc")
    await store.append([StreamAppend("s-1", 0, [NewEvent("test.Moved.v1", {"to": "x"})])])
    (env,) = await LogFeed("svc", store, registry()).fetch(0, 10, 0.0)
    assert (env.type, env.data) == ("test.Moved.v3", {"destination": "x", "by": "nobody"})
    (raw,) = await LogFeed("svc", store).fetch(0, 10, 0.0)
    assert raw.type == "test.Moved.v1"
