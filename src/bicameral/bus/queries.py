"""The query bus: each query through the chain (observe, authorize, the user's middleware,
then a wait for its consistency token), served from read models only.

Each projection is read at its live stored version (``bicameral.versions.LiveVersions``), so a
rebuild's switch moves queries and consistency waits to the new version in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from pydantic import BaseModel

from bicameral import metrics
from bicameral.bus.calls import QueryCall, RecordFilter
from bicameral.bus.chain import Bus, BusOptions, Middleware, Next
from bicameral.consistency import ConsistencyToken, wait_for_positions
from bicameral.context import MessageContext
from bicameral.errors import BicameralError
from bicameral.messages import Query
from bicameral.ports import ReadStore
from bicameral.projection import loaded
from bicameral.service import ReadModel, Service
from bicameral.versions import LiveVersions

__all__ = ["QueryBus", "QueryMiddleware", "StoreReadModel", "VisibleReadModel"]

QueryNext = Next[QueryCall, Any]
Tables = dict[tuple[str, int | None], tuple[str, type[BaseModel] | None]]
"""(collection, stored version) -> the collection's stored name and its model, made once."""
QueryMiddleware = Middleware[QueryCall, Any]


class StoreReadModel:
    """The ReadModel a query handler gets: collections by name, backed by the read store.

    ``numbers`` names the stored version to read of each projection (default: its own).
    """

    def __init__(
        self,
        service: Service,
        store: ReadStore,
        numbers: Mapping[str, int] | None = None,
        tables: Tables | None = None,
    ) -> None:
        self._service = service
        self._store = store
        self._numbers = numbers or {}
        self._tables: Tables = {} if tables is None else tables

    def _table(self, collection: str) -> tuple[str, type[BaseModel] | None]:
        projection = self._service.projection_reading(collection)
        number = self._numbers.get(projection.name)
        found = self._tables.get((collection, number))
        if found is None:
            table = projection.table(collection, number)
            found = self._tables[(collection, number)] = (table, projection.models.get(collection))
        return found

    async def get(self, collection: str, key: str) -> Any:
        """Returns one document (an instance of its model when typed), or None."""
        table, model = self._table(collection)
        doc = await self._store.get(table, key)
        return doc if model is None or doc is None else loaded(model, doc)

    async def find(self, collection: str, field: str, value: Any) -> list[Any]:
        """Returns documents whose indexed ``field`` equals ``value``, ordered by key."""
        table, model = self._table(collection)
        return _typed(model, await self._store.find(table, field, value))

    async def all(self, collection: str) -> list[Any]:
        """Returns every document of a collection, ordered by key."""
        table, model = self._table(collection)
        return _typed(model, await self._store.all(table))


def _typed(model: type[BaseModel] | None, found: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    if model is None:
        return [doc for _, doc in found]
    return [loaded(model, doc) for _, doc in found]


class VisibleReadModel:
    """A ReadModel showing only the documents a filter lets the caller see."""

    def __init__(self, reads: ReadModel, visible: RecordFilter) -> None:
        self._reads = reads
        self._visible = visible

    async def get(self, collection: str, key: str) -> Any:
        """Returns one document if visible, or None."""
        doc = await self._reads.get(collection, key)
        return doc if doc is not None and self._visible(collection, doc) else None

    async def find(self, collection: str, field: str, value: Any) -> list[Any]:
        """Returns the visible documents whose indexed ``field`` equals ``value``."""
        found = await self._reads.find(collection, field, value)
        return [d for d in found if self._visible(collection, d)]

    async def all(self, collection: str) -> list[Any]:
        """Returns every visible document of a collection, ordered by key."""
        return [d for d in await self._reads.all(collection) if self._visible(collection, d)]


class QueryBus(Bus[QueryCall, Any]):
    """Serves each query from read models, first waiting for a consistency token if given."""

    observed = ("query", metrics.QUERIES, metrics.QUERY_SECONDS)

    def __init__(
        self,
        service: Service,
        store: ReadStore,
        *,
        partitions: int = 1,
        **options: Unpack[BusOptions[QueryCall, Any]],
    ) -> None:
        super().__init__(service, **options)
        self.store = store
        self.partitions = partitions
        self.versions = LiveVersions(store, partitions)
        self._tables: Tables = {}
        self._projections = {p.name: p for p in service.projections}
        for handler in service.queries.values():
            self._projections.update((p.name, p) for p in handler.reads or ())

    async def ask(
        self,
        query: Query,
        context: MessageContext,
        *,
        token: ConsistencyToken | None = None,
        timeout: float = 5.0,
    ) -> Any:
        """Returns the query's answer; with ``token``, once its read models have caught up."""
        handler = self.service.queries.get(query.message_name)
        if handler is None or handler.query is not type(query):
            raise BicameralError(f"{self.service.name} has no handler for {query.message_name}")
        result = await self._chain(QueryCall(query, context, handler, token, timeout))
        if isinstance(result, BaseModel):  # model_dump(mode="json") without its Python layer
            return type(result).__pydantic_serializer__.to_python(result, mode="json")
        return result

    async def authorize(self, call: QueryCall) -> None:
        """Returns when the query may run; raises an AccessError when not."""
        await self._authorizer.authorize_query(call)

    def checkpoint_targets(self, call: QueryCall) -> dict[str, int]:
        """Returns what a token asks this query to await: ``<projection>:<source>`` -> position.

        A partitioned projection has passed a position once each of its partitions has.
        """
        if call.token is None:
            return {}
        targets: dict[str, int] = {}
        for projection in self.service.reads_of(call.handler):
            for source in projection.sources(self.service.name):
                position = call.token.positions.get(source)
                if position:
                    targets[f"{projection.name}:{source}"] = position
        return targets

    async def _innermost(self, call: QueryCall, next: QueryNext) -> Any:
        """Waits until the read models this query reads have passed its consistency token."""
        targets = self.checkpoint_targets(call)
        if targets:
            await wait_for_positions(targets, self.position, call.timeout, self.notifier)
        return await next(call)

    async def position(self, target: str) -> int:
        """Returns the position the live version of ``<projection>:<source>`` has passed."""
        name, _, source = target.rpartition(":")
        return await self.versions.position(self._projections[name], source)

    async def read_model(self, call: QueryCall) -> ReadModel:
        """Returns the read models of a query, at the stored versions queries read now."""
        numbers = {
            p.name: await self.versions.version(p) for p in self.service.reads_of(call.handler)
        }
        return StoreReadModel(self.service, self.store, numbers, self._tables)

    async def _handle(self, call: QueryCall) -> Any:
        visible = self._authorizer.record_filter(call)
        reads = await self.read_model(call)
        if visible is not None:
            reads = VisibleReadModel(reads, visible)
        args: list[Any] = []
        for param in call.handler.params:
            if param.kind == "readmodel":
                args.append(reads)
            elif param.kind == "context":
                args.append(call.context)
            elif param.kind == "principal":
                args.append(call.context.principal)
            else:
                raise BicameralError(f"a query handler cannot take {param.kind}")
        result = call.handler.fn(call.query, *args)
        return await result if call.handler.is_async else result
