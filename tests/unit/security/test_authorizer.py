"""The policy authorizer on real buses (memory backends): who may send what, and what they see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bicameral import (
    Aggregate,
    AllowAll,
    AuthenticationError,
    Command,
    Event,
    MessageContext,
    NotFoundError,
    PermissionDeniedError,
    Principal,
    Projection,
    Query,
    ReadModel,
    Service,
    View,
    allow,
)
from bicameral.context import ANONYMOUS
from bicameral.runtime.node import Node
from bicameral.runtime.settings import Settings
from bicameral.saga import service_principal
from bicameral.security.authorizer import PolicyAuthorizer


class CreateNote(Command):
    note_id: str
    owner: str


class EditNote(Command):
    note_id: str
    text: str


class Unguarded(Command):
    note_id: str


class Archive(Command):
    note_id: str


class Touch(Command):
    note_id: str


class GetNote(Query):
    note_id: str


class NoteCreated(Event, name="notes.NoteCreated"):
    note_id: str
    owner: str


class NoteEdited(Event, name="notes.NoteEdited"):
    note_id: str
    text: str


class Note(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.text = ""

    def apply(self, event: Event) -> None:
        match event:
            case NoteCreated(owner=owner):
                self.owner = owner
            case NoteEdited(text=text):
                self.text = text


notes_view = Projection("notes", collections={"notes": ["owner"]})


@notes_view.on(NoteCreated)
def created(event: NoteCreated, view: View) -> None:
    view.put("notes", event.note_id, {"note_id": event.note_id, "owner": event.owner})


def create(cmd: CreateNote, note: Note) -> None:
    note.record(NoteCreated(note_id=cmd.note_id, owner=cmd.owner))


def edit(cmd: EditNote, note: Note) -> None:
    if not note.exists:
        raise NotFoundError(f"no note {cmd.note_id!r}")
    note.record(NoteEdited(note_id=cmd.note_id, text=cmd.text))


def unguarded(cmd: Unguarded, note: Note) -> None:
    note.record(NoteEdited(note_id=cmd.note_id, text="x"))


def touch(cmd: Touch, note: Note) -> None:
    note.record(NoteEdited(note_id=cmd.note_id, text="touched"))


def archive(cmd: Archive, note: Note) -> None:
    note.record(NoteEdited(note_id=cmd.note_id, text="archived"))


async def get_note(query: GetNote, reads: ReadModel) -> dict[str, str]:
    doc = await reads.get("notes", query.note_id)
    if doc is None:
        raise NotFoundError(f"no note {query.note_id!r}")
    return doc


ADMIN_RULE = allow(roles={"admin"})
notes = Service("notes")
notes.events(NoteCreated, NoteEdited)
notes.projection(notes_view)
notes.command(key="note_id", policy=ADMIN_RULE | allow(roles={"user"}, owner="owner"))(create)
notes.command(key="note_id", policy=ADMIN_RULE | allow(roles={"user"}, record_owner="owner"))(edit)
notes.command(key="note_id")(unguarded)
notes.command(key="note_id", policy=allow(roles={"user"}, record_owner="owner"))(touch)
notes.command(key="note_id", internal=True, policy=ADMIN_RULE)(archive)
notes.query(policy=ADMIN_RULE | allow(roles={"user"}, record_owner="owner"))(get_note)

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
