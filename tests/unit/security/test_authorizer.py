"""The policy authorizer on real buses (memory backends): who may send what, and what they see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bicameral import (
    AllowAll,
    AuthenticationError,
    MessageContext,
    NotFoundError,
    PermissionDeniedError,
    Principal,
)
from bicameral.context import ANONYMOUS
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.security.authorizer import PolicyAuthorizer
from bicameral.workers.reactions import service_principal
from tests.unit.security.notes import (
    Archive,
    CreateNote,
    EditNote,
    GetNote,
    Merge,
    Touch,
    Unguarded,
    notes,
)

ALICE = MessageContext(principal=Principal("alice", frozenset({"user"})))
BOB = MessageContext(principal=Principal("bob", frozenset({"user"})))
ROOT = MessageContext(principal=Principal("root", frozenset({"admin"})))
NOBODY = MessageContext(principal=ANONYMOUS)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    settings = Settings.load(
        environ={},
        data_dir=tmp_path,
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
    )
    node = Node(settings, [notes], roles=["command-api", "query-api", "projector"])
    await node.start()
    yield node
    await node.stop()


async def head(node: Node) -> int:
    return await node.runtime("notes").events.head()


def test_a_node_enforces_policies_unless_told_otherwise(tmp_path: Path) -> None:
    settings = Settings.load(environ={}, data_dir=tmp_path, events_url="memory://")
    assert isinstance(Node(settings, [notes], roles=()).authorizer, PolicyAuthorizer)
    assert isinstance(Node(settings, [notes], (), authorizer=AllowAll()).authorizer, AllowAll)


async def test_the_owner_named_in_the_message_may_send_it(node: Node) -> None:
    bus = node.runtime("notes").commands
    result = await bus.dispatch(CreateNote(note_id="n1", owner="alice"), ALICE)
    assert result.position == 1


async def test_another_owner_in_the_message_is_forbidden(node: Node) -> None:
    bus = node.runtime("notes").commands
    with pytest.raises(PermissionDeniedError):
        await bus.dispatch(CreateNote(note_id="n1", owner="bob"), ALICE)
    assert await head(node) == 0


async def test_the_anonymous_are_asked_to_authenticate(node: Node) -> None:
    bus = node.runtime("notes").commands
    with pytest.raises(AuthenticationError):
        await bus.dispatch(CreateNote(note_id="n1", owner=""), NOBODY)
    assert await head(node) == 0


async def test_a_handler_without_a_policy_is_denied_to_everyone(node: Node) -> None:
    bus = node.runtime("notes").commands
    for ctx, error in ((ROOT, PermissionDeniedError), (NOBODY, AuthenticationError)):
        with pytest.raises(error):
            await bus.dispatch(Unguarded(note_id="n1"), ctx)
    assert await head(node) == 0


async def test_internal_commands_are_for_service_identities_only(node: Node) -> None:
    bus = node.runtime("notes").commands
    with pytest.raises(PermissionDeniedError, match="internal"):
        await bus.dispatch(Archive(note_id="n1"), ROOT)
    with pytest.raises(AuthenticationError):
        await bus.dispatch(Archive(note_id="n1"), NOBODY)
    assert await head(node) == 0
    service = MessageContext(principal=service_principal("notes"))
    assert (await bus.dispatch(Archive(note_id="n1"), service)).position == 1


async def test_another_users_aggregate_looks_missing(node: Node) -> None:
    bus = node.runtime("notes").commands
    await bus.dispatch(CreateNote(note_id="n1", owner="alice"), ALICE)
    with pytest.raises(NotFoundError) as theirs:
        await bus.dispatch(EditNote(note_id="n1", text="hi"), BOB)
    with pytest.raises(NotFoundError) as missing:
        await bus.dispatch(EditNote(note_id="n2", text="hi"), BOB)
    assert theirs.value.detail == "no note 'n1'"
    assert missing.value.detail == "no note 'n2'"
    assert await head(node) == 1
    assert (await bus.dispatch(EditNote(note_id="n1", text="hi"), ALICE)).position == 2
    assert (await bus.dispatch(EditNote(note_id="n1", text="ho"), ROOT)).position == 3


async def test_recording_on_another_users_aggregate_writes_nothing(node: Node) -> None:
    bus = node.runtime("notes").commands
    await bus.dispatch(CreateNote(note_id="n1", owner="alice"), ALICE)
    with pytest.raises(NotFoundError):
        await bus.dispatch(Touch(note_id="n1"), BOB)
    assert await head(node) == 1
    assert (await bus.dispatch(Touch(note_id="n1"), ALICE)).position == 2


async def test_another_users_document_looks_missing(node: Node) -> None:
    runtime = node.runtime("notes")
    result = await runtime.commands.dispatch(CreateNote(note_id="n1", owner="alice"), ALICE)
    own = await runtime.queries.ask(GetNote(note_id="n1"), ALICE, token=result.token)
    assert own == {"note_id": "n1", "owner": "alice"}
    assert await runtime.queries.ask(GetNote(note_id="n1"), ROOT) == own
    with pytest.raises(NotFoundError, match="no note 'n1'"):
        await runtime.queries.ask(GetNote(note_id="n1"), BOB)
    with pytest.raises(AuthenticationError):
        await runtime.queries.ask(GetNote(note_id="n1"), NOBODY)


async def test_events_record_the_acting_principal(node: Node) -> None:
    runtime = node.runtime("notes")
    await runtime.commands.dispatch(CreateNote(note_id="n1", owner="alice"), ALICE)
    acting = service_principal("notes", (await runtime.events.read_all(0, 10))[0])
    await runtime.commands.dispatch(Archive(note_id="n1"), MessageContext(principal=acting))
    first, second = await runtime.events.read_all(0, 10)
    assert first.principal == {"subject": "alice", "roles": ["user"]}
    assert second.principal == {
        "subject": "service:notes",
        "roles": ["service"],
        "service": "notes",
        "on_behalf_of": "alice",
    }


async def test_a_repository_hands_out_only_the_callers_aggregates(node: Node) -> None:
    bus = node.runtime("notes").commands
    await bus.dispatch(CreateNote(note_id="a1", owner="alice"), ALICE)
    await bus.dispatch(CreateNote(note_id="a2", owner="alice"), ALICE)
    await bus.dispatch(CreateNote(note_id="b1", owner="bob"), BOB)
    with pytest.raises(NotFoundError):
        await bus.dispatch(Merge(into="a1", other="b1"), ALICE)
    assert await head(node) == 3
    assert (await bus.dispatch(Merge(into="a1", other="a2"), ALICE)).position == 4
