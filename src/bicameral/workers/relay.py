"""The Relay: publishes a service's event log to the transport, in position order.

It saves its checkpoint after each published batch. When it starts, and after any backend
error, it resumes from the lower of its checkpoint and the transport's head, so events a broker
lost after acknowledging them (a killed NATS server) are published again; the transport drops
the overlap by event id, so subscribers see each once.

Given the service's ``registry``, it publishes each event as the current version of its class
(upcast from an older stored version if need be), with the stored type kept in the CloudEvent's
``storedtype`` attribute: subscribers only ever see the current contract.

The checkpoint only moves forward, and only from the value this relay last read or wrote
(compare-and-set): a relay that lost its lease to another copy finds the checkpoint moved,
writes nothing and starts over from the checkpoint at its next step.
"""

from __future__ import annotations

import asyncio
import logging

from bicameral import tracing
from bicameral.envelope import Envelope, upcast
from bicameral.messages import MessageRegistry
from bicameral.ports import EventStore, Transport
from bicameral.workers.meters import Meter
from bicameral.workers.retry import retrying

__all__ = ["Relay"]

log = logging.getLogger("bicameral.workers.relay")

CHECKPOINT = "relay"


class Relay:
    """Copies ``store``'s log to ``transport``."""

    def __init__(
        self,
        store: EventStore,
        transport: Transport,
        *,
        batch_size: int = 500,
        registry: MessageRegistry | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.batch_size = batch_size
        self.registry = registry
        self._after: int | None = None
        self.meter = Meter(store.service, CHECKPOINT)
        """Where this relay stands, for ``/metrics`` (the runtime registers it)."""
        self._saved = 0

    def reset(self) -> None:
        """Resumes from the checkpoint and the transport's head at the next step; stops
        reporting as the relay at work until then."""
        self._after = None
        self.meter.release()

    async def step(self, timeout: float = 1.0) -> int:
        """Publishes the next batch, if any; returns how many events it published."""
        try:
            return await self._step(timeout)
        except BaseException as exc:
            self._after = None
            if isinstance(exc, Exception):
                self.meter.failed(exc)
            raise

    async def _step(self, timeout: float) -> int:
        if self._after is None:
            self._saved = await self.store.load_checkpoint(CHECKPOINT)
            self._after = min(self._saved, await self.transport.head(self.store.service))
        after = self._after
        self.meter.at(after)
        batch = await self.store.read_all(after, self.batch_size)
        if not batch:
            if not await self.store.wait_for(after, timeout):
                return 0
            batch = await self.store.read_all(after, self.batch_size)
        self.meter.fetched(batch)
        registry = self.registry
        published = batch if registry is None else [upcast(e, registry, mark=True) for e in batch]
        if tracing.enabled():
            await self._traced(published)
        else:
            await self.transport.publish(self.store.service, published)
        self._after = end = batch[-1].position
        if end > self._saved:
            if not await self.store.save_checkpoint(CHECKPOINT, end, expected=self._saved):
                log.info("relay %s: checkpoint moved by another relay", self.store.service)
                self._after = None
                return 0
            self._saved = end
        self.meter.handled(end)
        return len(batch)

    async def _traced(self, batch: list[Envelope]) -> None:
        """Publishes ``batch`` in a span ``publish <service>``: in the trace of the batch's first
        event, linked to the traces of the others."""
        parent = tracing.context_of(batch[0].metadata)
        with tracing.span(
            f"publish {self.store.service}",
            kind=tracing.SpanKind.PRODUCER,
            parent=parent,
            links=tracing.links_to((e.metadata for e in batch), parent),
            attributes={
                "bicameral.service": self.store.service,
                "bicameral.events": len(batch),
                "bicameral.position": batch[-1].position,
            },
        ):
            await self.transport.publish(self.store.service, batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Publishes until ``stop`` is set; backs off and retries on transient failures."""
        await retrying(
            lambda: self.step(timeout=0.5), stop, name=f"relay {self.store.service}", logger=log
        )
