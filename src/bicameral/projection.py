"""Projections: pure folding logic from events to read-model documents.

A projection names its collections (with indexed fields) and says how each event type changes
them. Handlers read and write through a ``View``; they never commit, and they must not do other
I/O, so that replaying an event gives the same documents::

    products = Projection("products", collections={"products": ["name"]})

    @products.on(ProductRegistered)
    def registered(event: ProductRegistered, view: View) -> None:
        view.put("products", event.sku, {"sku": event.sku, "name": event.message_name})

A collection may be typed by a pydantic model instead: ``view.get`` and the query side then
return instances of it, and ``view.put`` takes one and validates it before it is stored (as its
JSON form, so the stored documents are the same either way)::

    class Product(BaseModel):
        sku: str
        name: str

    products = Projection("products", collections={"products": Product},
                          indexes={"products": ["name"]})

The ``Projector`` (``workers.projector``) runs it and stores its checkpoint atomically with
the documents, so each event changes the read model exactly once.

Several projector processes may share a projection (``workers.partitions``): each folds the
events whose partition key (the stream id, unless ``partition_by`` says otherwise) hashes to
the partitions it owns. Every document must therefore be written only by events of one key:
the default suits documents per stream; a projection that writes a document from several
streams gives ``partition_by`` a function returning that document's key (the same for every
event of a stream), or a constant to keep the whole projection in one partition.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from bicameral.envelope import Envelope
from bicameral.errors import ConfigurationError
from bicameral.messages import Event, MessageRegistry
from bicameral.ports import Changes, ReadStore

__all__ = [
    "Document",
    "PartitionKey",
    "Projection",
    "ProjectionHandler",
    "View",
    "loaded",
    "partition_checkpoints",
    "projection_position",
    "source_of",
    "stored",
    "validated",
]

E = TypeVar("E", bound=Event)
B = TypeVar("B", bound=BaseModel)
Document = dict[str, Any]
ProjectionHandler = Callable[..., Awaitable[None] | None]
Prefetch = Callable[[Any], Iterable[tuple[str, str]]]
"""Names the ``(collection, key)`` documents a handler will read for an event."""
PartitionKey = Callable[[Envelope], str]
_ABSENT = object()


def source_of(event: type[Event], default: str) -> str:
    """Returns the service an event type comes from: its name's prefix before the first dot."""
    prefix, dot, _ = event.message_name.partition(".")
    return prefix if dot else default


@dataclass(frozen=True, slots=True)
class _Handler:
    event: type[Event]
    fn: ProjectionHandler
    wants_envelope: bool
    is_async: bool
    prefetch: Prefetch | None = None


class Projection:
    """A named, versioned read model: its collections and a handler per event type.

    An event whose handler (or decoding, or document) fails is tried ``retries`` more times,
    then parked with every later event of its partition key (see ``bicameral.parking``).
    """

    def __init__(
        self,
        name: str,
        *,
        collections: Mapping[str, Sequence[str] | type[BaseModel]],
        version: int = 1,
        partition_by: PartitionKey | None = None,
        indexes: Mapping[str, Sequence[str]] | None = None,
        retries: int = 3,
    ) -> None:
        """``collections`` maps each collection to its indexed fields (dict documents) or to
        the pydantic model of its documents, whose indexed fields ``indexes`` names."""
        if version < 1:
            raise ConfigurationError(f"projection {name}: version must be 1 or more")
        if retries < 0:
            raise ConfigurationError(f"{name}: retries must be 0 or more")
        self.name = name
        self.version = version
        self.code_version = version
        self.retries = retries
        self._partition_by = partition_by
        self.models: dict[str, type[BaseModel]] = {
            c: kind for c, kind in collections.items() if isinstance(kind, type)
        }
        for collection, kind in collections.items():
            if isinstance(kind, type) and not issubclass(kind, BaseModel):
                raise ConfigurationError(
                    f"projection {name}: collection {collection!r} must name indexed fields "
                    "or a pydantic model"
                )
        extra = dict(indexes or {})
        unknown = sorted(set(extra) - set(collections))
        if unknown:
            raise ConfigurationError(f"projection {name}: indexes of unknown {unknown}")
        self.collections = {
            c: tuple(extra.get(c, ())) if isinstance(kind, type) else (*kind, *extra.get(c, ()))
            for c, kind in collections.items()
        }
        self.handlers: dict[str, _Handler] = {}
        self._sources: dict[str, set[str]] = {}
        self._found: dict[str, list[str]] = {}
        """``sources(own_service)`` by own service, until a handler is added."""
        self._registries: list[MessageRegistry] = []

    def on(
        self,
        event: type[E],
        *,
        source: str | None = None,
        prefetch: Prefetch | None = None,
    ) -> Callable[[ProjectionHandler], ProjectionHandler]:
        """Registers the decorated ``fn(event, view[, envelope])`` for ``event``.

        ``prefetch(event)`` names the ``(collection, key)`` documents the handler reads, so a
        batch loads them all in one read instead of one read per event.
        """

        def register(fn: ProjectionHandler) -> ProjectionHandler:
            if event.type_name in self.handlers:
                raise ConfigurationError(f"{self.name} handles {event.type_name} twice")
            arity = len(inspect.signature(fn).parameters)
            self.handlers[event.type_name] = _Handler(
                event, fn, arity >= 3, inspect.iscoroutinefunction(fn), prefetch
            )
            for registry in self._registries:
                registry.register(event)
            self._sources.setdefault(source or "", set()).add(event.type_name)
            self._found.clear()
            return fn

        return register

    def attach(self, registry: MessageRegistry) -> None:
        """Registers the handled event classes in ``registry``, now and when handlers are added
        later, so a service decodes them whatever the order of its declarations."""
        for handler in self.handlers.values():
            registry.register(handler.event)
        if not any(known is registry for known in self._registries):
            self._registries.append(registry)

    def sources(self, own_service: str) -> list[str]:
        """Returns the services whose events this projection folds (worked out once, until a
        handler is added: a query with a consistency token asks each time)."""
        known = self._found.get(own_service)
        if known is None:
            found: set[str] = set()
            for explicit, types in self._sources.items():
                for type_name in types:
                    event = self.handlers[type_name].event
                    found.add(explicit or source_of(event, own_service))
            known = self._found[own_service] = sorted(found)
        return list(known)

    def partition_key(self, envelope: Envelope) -> str:
        """Returns the key that decides which partition folds ``envelope``."""
        if self._partition_by is None:
            return envelope.subject
        return self._partition_by(envelope)

    def table(self, collection: str, version: int | None = None) -> str:
        """Returns the stored name of a collection of this (or the given stored) version."""
        return f"{self.name}_v{self.version if version is None else version}_{collection}"

    def checkpoint(self, source: str, version: int | None = None) -> str:
        """Returns the checkpoint name for one source service of this (or the given) version."""
        return f"{self.name}.v{self.version if version is None else version}:{source}"

    def renamed(self, name: str) -> Projection:
        """Returns this projection (same collections, models and handlers) under ``name``."""
        found = copy.copy(self)
        found.name = name
        return found

    def at(self, version: int) -> Projection:
        """Returns this projection writing stored version ``version`` (same handlers).

        A rebuild stores the current code's projection under a new version number, beside the
        live one; ``code_version`` stays the version the code declares.
        """
        if version == self.version:
            return self
        found = copy.copy(self)
        found.version = version
        return found

    def handles(self, envelope: Envelope) -> bool:
        """Returns True when this projection has a handler for ``envelope``'s type."""
        return envelope.type in self.handlers

    async def fold(self, envelopes: Sequence[Envelope], view: View) -> None:
        """Applies each envelope's handler, in order, to ``view`` (unknown types are skipped)."""
        work: list[tuple[_Handler, Event, Envelope]] = []
        wanted: dict[str, set[str]] = {}
        for env in envelopes:
            handler = self.handlers.get(env.type)
            if handler is None:
                continue
            event = handler.event.__pydantic_validator__.validate_python(env.data)
            work.append((handler, event, env))
            if handler.prefetch is not None:
                for collection, key in handler.prefetch(event):
                    wanted.setdefault(collection, set()).add(key)
        for collection, keys in wanted.items():
            await view.prefetch(collection, keys)
        for handler, event, env in work:
            await _call(handler, event, env, view)

    async def prefetch(self, envelopes: Sequence[Envelope], view: View) -> None:
        """Loads the documents the handlers of ``envelopes`` declare they read, in one read
        per collection; events that do not decode are left to ``apply`` to report."""
        wanted: dict[str, set[str]] = {}
        for env in envelopes:
            handler = self.handlers.get(env.type)
            if handler is None or handler.prefetch is None:
                continue
            try:
                event = handler.event.model_validate(env.data)
                named = list(handler.prefetch(event))
            except Exception:  # apply raises it again, for this event only
                continue
            for collection, key in named:
                wanted.setdefault(collection, set()).add(key)
        for collection, keys in wanted.items():
            await view.prefetch(collection, keys)

    async def apply(self, envelope: Envelope, view: View) -> None:
        """Decodes ``envelope`` and applies its handler to ``view`` (nothing for unknown types)."""
        handler = self.handlers.get(envelope.type)
        if handler is not None:
            await _call(handler, handler.event.model_validate(envelope.data), envelope, view)


async def _call(handler: _Handler, event: Event, env: Envelope, view: View) -> None:
    args: tuple[Any, ...] = (event, view, env) if handler.wants_envelope else (event, view)
    result = handler.fn(*args)
    if handler.is_async and result is not None:
        await result


class View:
    """A projection's window on its read model for one batch: reads see the batch's own writes.

    Documents of a typed collection come and go as instances of its model; others as dicts.
    """

    def __init__(self, projection: Projection, store: ReadStore) -> None:
        self._projection = projection
        self._store = store
        self._changes: dict[tuple[str, str], Document | None] = {}
        self._read: dict[tuple[str, str], Document | None] = {}
        self._tables = {c: projection.table(c) for c in projection.collections}
        self._models = {projection.table(c): m for c, m in projection.models.items()}
        self._valid: dict[tuple[str, str], BaseModel] = {}
        """The instance a typed put validated, handed to the next get of that document."""
        self._journal: list[tuple[tuple[str, str], Any]] | None = None

    def savepoint(self) -> int:
        """Returns a mark to ``rollback`` to: the batch's writes from then on can be undone."""
        if self._journal is None:
            self._journal = []
        return len(self._journal)

    def rollback(self, savepoint: int) -> None:
        """Undoes the writes made since ``savepoint`` (a handler that failed half-way)."""
        journal = self._journal or []
        self._valid.clear()
        while len(journal) > savepoint:
            where, before = journal.pop()
            if before is _ABSENT:
                self._changes.pop(where, None)
            else:
                self._changes[where] = before

    def _change(self, where: tuple[str, str], document: Document | None) -> None:
        if self._journal is not None:
            self._journal.append((where, self._changes.get(where, _ABSENT)))
        self._changes[where] = document

    async def prefetch(self, collection: str, keys: Iterable[str]) -> None:
        """Loads documents in one read, so the next ``get`` of each needs none."""
        table = self._table(collection)
        missing = [k for k in keys if (table, k) not in self._changes]
        if not missing:
            return
        found = await self._store.get_many(table, missing)
        for key in missing:
            self._read[(table, key)] = found.get(key)

    def _table(self, collection: str) -> str:
        try:
            return self._tables[collection]
        except KeyError:
            raise ConfigurationError(
                f"projection {self._projection.name} has no collection {collection!r}",
            ) from None

    def _typed(self, table: str, doc: Document | None) -> Any:
        model = self._models.get(table)
        return doc if model is None or doc is None else loaded(model, doc)

    async def get(self, collection: str, key: str) -> Any:
        """Returns a document as this batch left it (a model instance when typed), or None."""
        table = self._table(collection)
        if (table, key) in self._changes:
            valid = self._valid.pop((table, key), None)
            if valid is not None:
                return valid
            doc = self._changes[(table, key)]
            return self._typed(table, None if doc is None else dict(doc))
        if (table, key) in self._read:
            return self._typed(table, self._read.pop((table, key)))
        return self._typed(table, await self._store.get(table, key))

    async def find(self, collection: str, field: str, value: Any) -> list[Any]:
        """Returns documents whose indexed ``field`` equals ``value``, including batch writes."""
        table = self._table(collection)
        found = dict(await self._store.find(table, field, value))
        for (t, key), doc in self._changes.items():
            if t != table:
                continue
            if doc is not None and doc.get(field) == value:
                found[key] = dict(doc)
            else:
                found.pop(key, None)
        return [self._typed(table, doc) for _, doc in sorted(found.items())]

    def put(self, collection: str, key: str, document: Any) -> None:
        """Writes a whole document (replacing any earlier one) when the batch commits.

        A typed collection takes an instance of its model (or a mapping of its fields) and
        validates it; a ValidationError fails the handler, and nothing of the batch is stored.
        """
        table = self._table(collection)
        model = self._models.get(table)
        if model is None:
            self._change((table, key), stored(None, document))
            return
        if type(document) is model and _by_fields(model):
            valid = model.__pydantic_validator__.validate_python(document.__dict__)
        else:
            valid = validated(model, document)
        self._change((table, key), model.__pydantic_serializer__.to_python(valid, mode="json"))
        self._valid[(table, key)] = valid

    def delete(self, collection: str, key: str) -> None:
        """Deletes a document when the batch commits."""
        table = self._table(collection)
        self._change((table, key), None)
        self._valid.pop((table, key), None)

    @property
    def changes(self) -> Changes:
        """Returns the batch's changes, keyed by (stored collection, key)."""
        return self._changes


def loaded(model: type[B], document: Document) -> B:
    """Returns the instance of ``model`` a stored document holds (ValidationError if none)."""
    return model.__pydantic_validator__.validate_python(document)  # type: ignore[no-any-return]


def stored(model: type[BaseModel] | None, document: Any) -> Document:
    """Returns the stored (JSON) form of a document, validated by ``model`` if given.

    Goes straight to pydantic-core's validator and serializer: a fold calls this per event.
    """
    if model is None:
        if isinstance(document, BaseModel):
            return document.model_dump(mode="json")
        return dict(document)
    valid = validated(model, document)
    return model.__pydantic_serializer__.to_python(valid, mode="json")  # type: ignore[no-any-return]


def validated(model: type[B], document: Any) -> B:
    """Returns a fresh, validated instance of ``model`` from a model instance or a mapping.

    An instance of another model is taken for its fields (an older version's document class,
    say): what ``model`` does not accept is a ValidationError.
    """
    if isinstance(document, BaseModel):
        document = type(document).__pydantic_serializer__.to_python(document, warnings=False)
    elif not isinstance(document, Mapping):
        raise ConfigurationError(
            f"a {model.__name__} document was expected, not {type(document).__name__}"
        )
    return model.__pydantic_validator__.validate_python(document)  # type: ignore[no-any-return]


_NOT_BY_FIELDS = frozenset(
    {"model", "dataclass", "definitions", "definition-ref", "any", "model-fields", "call"}
)


_BY_FIELDS: dict[type[BaseModel], bool] = {}


def _by_fields(model: type[BaseModel]) -> bool:
    """Returns (once per model) whether ``_checks_by_fields(model)``."""
    found = _BY_FIELDS.get(model)
    if found is None:
        found = _BY_FIELDS[model] = _checks_by_fields(model)
    return found


def _checks_by_fields(model: type[BaseModel]) -> bool:
    """Returns True when validating an instance's field values (its ``__dict__``) checks it as
    fully as validating its serialized fields: no field holds a model or dataclass (validation
    would take the instance as it is) or an ``Any`` (shared, unchecked), no serializer or
    exclusion makes the stored fields differ from its values, and the model has no extra or
    computed fields. Other models are validated from their serialized fields."""
    schema = model.__pydantic_core_schema__
    if schema.get("type") != "model" or schema.get("root_model") or "serialization" in schema:
        return False
    if schema.get("config", {}).get("extra_fields_behavior") == "allow":
        return False
    fields = schema.get("schema", {})
    if fields.get("type") != "model-fields" or fields.get("computed_fields"):
        return False
    return not any(_opaque(field) for field in fields.get("fields", {}).values())


def _opaque(node: Any) -> bool:
    """Returns True when a core schema (part) holds a kind ``_by_fields`` cannot vouch for
    (``serialization...`` keys: a serializer, an excluded field, a serialization alias)."""
    if isinstance(node, dict):
        if node.get("type") in _NOT_BY_FIELDS or any(k.startswith("serialization") for k in node):
            return True
        return any(_opaque(v) for k, v in node.items() if k != "metadata")
    if isinstance(node, list | tuple):
        return any(_opaque(v) for v in node)
    return False


def partition_checkpoints(checkpoint: str, count: int) -> list[str]:
    """Returns the checkpoint name of each partition of ``checkpoint``."""
    if count == 1:
        return [checkpoint]
    return [f"{checkpoint}#p{i}" for i in range(count)]


async def projection_position(store: ReadStore, checkpoint: str, count: int) -> int:
    """Returns the position every partition of ``checkpoint`` has passed."""
    if count == 1:
        return await store.checkpoint(checkpoint)
    found = await store.checkpoints()
    return min(found.get(name, 0) for name in partition_checkpoints(checkpoint, count))
