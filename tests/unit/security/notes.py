"""A small service with one handler of each kind of policy, for the authorizer's tests."""

from __future__ import annotations

from bicameral import (
    Aggregate,
    Command,
    Event,
    NotFoundError,
    Projection,
    Query,
    ReadModel,
    Repository,
    Service,
    View,
    allow,
)


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


class Merge(Command):
    into: str
    other: str


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


async def merge(cmd: Merge, notes: Repository[Note]) -> None:
    into, other = await notes.get(cmd.into), await notes.get(cmd.other)
    if not (into.exists and other.exists):
        raise NotFoundError("no such note")
    into.record(NoteEdited(note_id=cmd.into, text=other.text))


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
notes.command(policy=allow(roles={"user"}, record_owner="owner"))(merge)
notes.command(key="note_id", internal=True, policy=ADMIN_RULE)(archive)
notes.query(policy=ADMIN_RULE | allow(roles={"user"}, record_owner="owner"))(get_note)
