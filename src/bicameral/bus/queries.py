"""The query bus: each query through the chain (observe, authorize, the user's middleware,
then a wait for its consistency token), served from read models only."""

from __future__ import annotations

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
from bicameral.projection import projection_position
from bicameral.service import ReadModel, Service

__all__ = ["QueryBus", "QueryMiddleware", "StoreReadModel", "VisibleReadModel"]

QueryNext = Next[QueryCall, Any]
QueryMiddleware = Middleware[QueryCall, Any]


class StoreReadModel:
    """The ReadModel a query handler gets: collections by name, backed by the read store."""

    def __init__(self, service: Service, store: ReadStore) -> None:
        self._service = service
        self._store = store

    def _table(self, collection: str) -> str:
        return self._service.projection_reading(collection).table(collection)

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document, or None."""
        return await self._store.get(self._table(collection), key)

    async def find(self, collection: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Returns documents whose indexed ``field`` equals ``value``, ordered by key."""
        return [doc for _, doc in await self._store.find(self._table(collection), field, value)]

    async def all(self, collection: str) -> list[dict[str, Any]]:
        """Returns every document of a collection, ordered by key."""
        return [doc for _, doc in await self._store.all(self._table(collection))]


class VisibleReadModel:
    """A ReadModel showing only the documents a filter lets the caller see."""

    def __init__(self, reads: ReadModel, visible: RecordFilter) -> None:
        self._reads = reads
        self._visible = visible

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document if visible, or None."""
        doc = await self._reads.get(collection, key)
        return doc if doc is not None and self._visible(collection, doc) else None

    async def find(self, collection: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Returns the visible documents whose indexed ``field`` equals ``value``."""
        found = await self._reads.find(collection, field, value)
        return [d for d in found if self._visible(collection, d)]

    async def all(self, collection: str) -> list[dict[str, Any]]:
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
        self.read_model: ReadModel = StoreReadModel(service, store)

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
        return result.model_dump(mode="json") if isinstance(result, BaseModel) else result

    async def authorize(self, call: QueryCall) -> None:
        """Returns when the query may run; raises an AccessError when not."""
        await self._authorizer.authorize_query(call)

    def checkpoint_targets(self, call: QueryCall) -> dict[str, int]:
        """Returns the projection checkpoints (and positions) a token asks this query to await.

        A partitioned projection has passed a position once each of its partitions has.
        """
        if call.token is None:
            return {}
        targets: dict[str, int] = {}
        for projection in self.service.reads_of(call.handler):
            for source in projection.sources(self.service.name):
                position = call.token.positions.get(source)
                if position:
                    targets[projection.checkpoint(source)] = position
        return targets

    async def _innermost(self, call: QueryCall, next: QueryNext) -> Any:
        """Waits until the read models this query reads have passed its consistency token."""
        targets = self.checkpoint_targets(call)
        if targets:
            await wait_for_positions(targets, self.position, call.timeout, self.notifier)
        return await next(call)

    async def position(self, checkpoint: str) -> int:
        """Returns the position every partition of a projection checkpoint has passed."""
        return await projection_position(self.store, checkpoint, self.partitions)

    async def _handle(self, call: QueryCall) -> Any:
        visible = self._authorizer.record_filter(call)
        reads = self.read_model if visible is None else VisibleReadModel(self.read_model, visible)
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
