"""Typed read models: a pydantic model per collection, validated on the way in."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from bicameral import ConfigurationError, Event, Projection, Query, ReadModel, Service, View
from bicameral.bus.queries import StoreReadModel
from bicameral.readstore.memory import MemoryReadStore


class Counted(Event, name="typed.Counted"):
    key: str
    owner: str


class Tally(BaseModel):
    key: str
    owner: str
    count: int = 0


class Noted(BaseModel):
    text: str


tallies = Projection(
    "tallies",
    collections={"tallies": Tally, "plain": ["owner"]},
    indexes={"tallies": ["owner"]},
)


@tallies.on(Counted)
async def counted(event: Counted, view: View) -> None:
    tally: Tally | None = await view.get("tallies", event.key)
    tally = tally or Tally(key=event.key, owner=event.owner)
    tally.count += 1
    view.put("tallies", event.key, tally)
    plain = await view.get("plain", event.key) or {"owner": event.owner, "count": 0}
    plain["count"] += 1
    view.put("plain", event.key, plain)


def test_a_typed_collection_keeps_its_model_and_its_indexes() -> None:
    assert tallies.models == {"tallies": Tally}
    assert tallies.collections == {"tallies": ("owner",), "plain": ("owner",)}


def test_a_collection_must_be_fields_or_a_pydantic_model() -> None:
    with pytest.raises(ConfigurationError, match="pydantic model"):
        Projection("bad", collections={"c": int})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="unknown"):
        Projection("bad", collections={"c": Tally}, indexes={"d": ["x"]})


async def test_the_view_gives_model_instances_and_stores_their_json() -> None:
    store = MemoryReadStore()
    view = View(tallies, store)
    for _ in range(3):
        await counted(Counted(key="a", owner="ann"), view)
    assert await view.get("tallies", "a") == Tally(key="a", owner="ann", count=3)
    assert await view.find("tallies", "owner", "ann") == [Tally(key="a", owner="ann", count=3)]
    assert await store.commit("cp", 0, 3, view.changes)
    assert await store.get(tallies.table("tallies"), "a") == {
        "key": "a",
        "owner": "ann",
        "count": 3,
    }
    assert await store.get(tallies.table("plain"), "a") == {"owner": "ann", "count": 3}
    again = View(tallies, store)
    assert await again.get("tallies", "a") == Tally(key="a", owner="ann", count=3)


async def test_put_validates_a_typed_document() -> None:
    view = View(tallies, MemoryReadStore())
    broken = Tally(key="a", owner="ann")
    broken.count = "many"  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        view.put("tallies", "a", broken)
    with pytest.raises(ValidationError):
        view.put("tallies", "a", {"key": "a"})
    with pytest.raises(ValidationError):
        view.put("tallies", "a", Noted(text="x"))
    with pytest.raises(ConfigurationError, match="a Tally document was expected, not int"):
        view.put("tallies", "a", 3)
    view.put("tallies", "b", {"key": "b", "owner": "bob", "count": "2"})
    assert view.changes[(tallies.table("tallies"), "b")] == {"key": "b", "owner": "bob", "count": 2}


class ByOwner(Query):
    owner: str


async def test_the_query_side_reads_typed_documents() -> None:
    service = Service("typed")
    service.projection(tallies)

    @service.query
    async def by_owner(query: ByOwner, reads: ReadModel) -> list[Tally]:
        found: list[Tally] = await reads.find("tallies", "owner", query.owner)
        return found

    store = MemoryReadStore()
    view = View(tallies, store)
    await counted(Counted(key="a", owner="ann"), view)
    await counted(Counted(key="b", owner="bob"), view)
    assert await store.commit("cp", 0, 2, view.changes)
    reads = StoreReadModel(service, store)
    assert await reads.get("tallies", "a") == Tally(key="a", owner="ann", count=1)
    assert await reads.get("tallies", "zz") is None
    assert await reads.all("tallies") == [
        Tally(key="a", owner="ann", count=1),
        Tally(key="b", owner="bob", count=1),
    ]
    assert await by_owner(ByOwner(owner="bob"), reads) == [Tally(key="b", owner="bob", count=1)]
    assert await reads.get("plain", "a") == {"owner": "ann", "count": 1}


async def test_a_document_changed_but_not_put_again_stays_as_put() -> None:
    view = View(tallies, MemoryReadStore())
    put = Tally(key="a", owner="ann", count=1)
    view.put("tallies", "a", put)
    put.count = 50
    first = await view.get("tallies", "a")
    first.count = 99
    assert await view.get("tallies", "a") == Tally(key="a", owner="ann", count=1)
    assert view.changes[(tallies.table("tallies"), "a")]["count"] == 1


def test_a_renamed_projection_keeps_its_models_indexes_and_handlers() -> None:
    other = tallies.renamed("other")
    assert (other.models, other.collections, other.handlers) == (
        tallies.models,
        tallies.collections,
        tallies.handlers,
    )
    assert (other.table("tallies"), tallies.table("tallies")) == (
        "other_v1_tallies",
        "tallies_v1_tallies",
    )


class Customer(BaseModel):
    name: Annotated[str, AfterValidator(str.strip)]
    tags: list[str] = []


class Note(BaseModel):
    text: str
    draft: str = Field("", exclude=True)


class Address(BaseModel):
    zip: Annotated[str, Field(pattern=r"^\d{5}$")]


class Located(BaseModel):
    address: Address


customers = Projection(
    "customers", collections={"customers": Customer, "located": Located, "notes": Note}
)


async def test_put_refuses_a_document_made_invalid_after_it_was_read() -> None:
    """Each put validates what it is given, also an instance a get handed out (a model of
    plain fields, and one holding another model)."""
    view = View(customers, MemoryReadStore())
    view.put("customers", "a", Customer(name="ann"))
    flat = await view.get("customers", "a")
    flat.tags.append(3)
    with pytest.raises(ValidationError):
        view.put("customers", "a", flat)
    view.put("located", "a", Located(address=Address(zip="12345")))
    nested = await view.get("located", "a")
    nested.address.zip = "not a zip"
    with pytest.raises(ValidationError):
        view.put("located", "a", nested)


async def test_put_stores_the_validated_form_and_shares_nothing_with_the_handler() -> None:
    view = View(customers, MemoryReadStore())
    given = Customer(name="ann", tags=["x"])
    given.name = "  bob  "
    view.put("customers", "a", given)
    given.tags.append("later")
    assert view.changes[(customers.table("customers"), "a")] == {"name": "bob", "tags": ["x"]}
    assert await view.get("customers", "a") == Customer(name="bob", tags=["x"])


async def test_a_field_left_out_of_the_stored_form_is_not_kept_by_a_put() -> None:
    """The next get of a batch sees what was stored: an excluded field is back to its default."""
    view = View(customers, MemoryReadStore())
    view.put("notes", "a", Note(text="t", draft="unsaved"))
    assert view.changes[(customers.table("notes"), "a")] == {"text": "t"}
    assert await view.get("notes", "a") == Note(text="t")
