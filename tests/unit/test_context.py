"""A message context's ids are random version 4 UUIDs, written as uuid writes them."""

from __future__ import annotations

import uuid

from bicameral.context import MessageContext
from bicameral.envelope import NewEvent


def test_new_ids_are_random_version_4_uuids_in_canonical_text() -> None:
    contexts = [MessageContext() for _ in range(2000)]
    ids = [c.correlation_id for c in contexts] + [c.message_id for c in contexts]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert {text[19] for text in ids} == set("89ab")


def test_a_caused_message_gets_a_new_id_in_the_same_correlation() -> None:
    first = MessageContext()
    then = first.caused_by(first.message_id)
    assert then.correlation_id == first.correlation_id
    assert then.causation_id == first.message_id
    assert then.message_id not in (first.message_id, first.correlation_id)


def test_new_events_get_random_version_4_uuids_too() -> None:
    ids = [NewEvent("t.v1", {}).id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
