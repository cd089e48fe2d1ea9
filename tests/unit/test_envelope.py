"""The Envelope and its CloudEvents 1.0 JSON form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import Envelope, Event, InvalidMessageError, NewEvent, from_cloudevent, to_cloudevent
from bicameral.envelope import decode, encode
from tests.cloudevents import assert_valid_cloudevent

INT32 = 2**31 - 1

text = st.text(st.characters(codec="utf-8"), max_size=20)
ident = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
principals = st.fixed_dictionaries(
    {"subject": text, "roles": st.lists(ident, max_size=3, unique=True)},
    optional={"service": ident, "on_behalf_of": text},
)
traceparents = st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", fullmatch=True)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "principal": principals,
        "correlation_id": st.uuids().map(str),
        "causation_id": st.uuids().map(str),
        "traceparent": traceparents,
        "tenant": json_values,
    },
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
envelopes = st.builds(
    Envelope,
    id=st.uuids().map(str),
    type=st.from_regex(r"[a-z]+\.[A-Z][A-Za-z]{0,12}\.v[1-9]", fullmatch=True),
    source=st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
    subject=ident,
    time=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31), timezones=offsets
    ),
    stream_version=st.integers(1, INT32),
    position=st.integers(1, INT32),
    data=st.dictionaries(text, json_values, max_size=5),
    metadata=metadata,
)


@given(envelopes)
def test_an_envelope_survives_the_cloudevents_json_round_trip(env: Envelope) -> None:
    assert decode(encode(env)) == env


@given(envelopes)
def test_the_json_form_is_a_valid_cloudevents_document(env: Envelope) -> None:
    doc = orjson.loads(encode(env))
    assert_valid_cloudevent(doc)
    assert doc["id"] == env.id
    assert doc["source"] == env.source
    assert doc["subject"] == env.subject
    assert doc["data"] == env.data


@given(envelopes)
def test_correlation_causation_and_trace_are_cloudevents_attributes(env: Envelope) -> None:
    doc = to_cloudevent(env)
    for key, attr in [
        ("correlation_id", "correlationid"),
        ("causation_id", "causationid"),
        ("traceparent", "traceparent"),
    ]:
        assert doc.get(attr) == env.metadata.get(key)


def test_the_principal_is_read_from_the_metadata() -> None:
    who = {"subject": "ann", "roles": ["clerk"]}
    env = from_cloudevent(to_cloudevent(_envelope(metadata={"principal": who})))
    assert env.principal == who
    assert _envelope().principal == {}


def test_a_naive_time_is_read_as_utc() -> None:
    doc = to_cloudevent(_envelope())
    doc["time"] = "2026-01-02T03:04:05"
    assert from_cloudevent(doc).time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "change",
    [
        {"specversion": "0.3"},
        {"time": "yesterday"},
        {"position": "first"},
        {"bicameralmeta": "{not json"},
    ],
)
def test_a_document_that_is_not_ours_is_an_invalid_message(change: dict[str, Any]) -> None:
    doc = {**to_cloudevent(_envelope()), **change}
    with pytest.raises(InvalidMessageError):
        from_cloudevent(doc)


@pytest.mark.parametrize("missing", ["id", "type", "source", "time", "position", "data"])
def test_a_document_missing_an_attribute_is_an_invalid_message(missing: str) -> None:
    doc = to_cloudevent(_envelope())
    del doc[missing]
    with pytest.raises(InvalidMessageError):
        from_cloudevent(doc)


def test_a_new_event_carries_the_domain_event_as_json_data() -> None:
    class Priced(Event, name="test.Priced", version=3):
        sku: str
        at: datetime

    at = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    new = NewEvent.of(Priced(sku="a", at=at), {"correlation_id": "c"})
    assert new.type == "test.Priced.v3"
    assert new.data == {"sku": "a", "at": "2026-05-06T07:08:09Z"}
    assert new.metadata == {"correlation_id": "c"}
    assert new.id != NewEvent.of(Priced(sku="a", at=at)).id


def _envelope(metadata: dict[str, Any] | None = None) -> Envelope:
    return Envelope(
        id="e1",
        type="svc.Thing.v1",
        source="svc",
        subject="thing-1",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        stream_version=1,
        position=1,
        data={"n": 1},
        metadata=metadata or {},
    )
