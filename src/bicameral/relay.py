"""The Relay: publishes a service's event log to the transport, in position order.

It saves its checkpoint after each published batch. After a crash it publishes again from
the checkpoint; the transport drops the overlap by event id, so subscribers see each once.
"""

from __future__ import annotations

import asyncio
import logging

from bicameral.errors import BicameralError
from bicameral.ports import EventStore, Transport

__all__ = ["Relay"]

log = logging.getLogger("bicameral.relay")

CHECKPOINT = "relay"


class Relay:
    """Copies ``store``'s log to ``transport``."""

    def __init__(self, store: EventStore, transport: Transport, *, batch_size: int = 500) -> None:
        self.store = store
        self.transport = transport
        self.batch_size = batch_size

    async def step(self, timeout: float = 1.0) -> int:
        """Publishes the next batch, if any; returns how many events it published."""
        after = await self.store.load_checkpoint(CHECKPOINT)
        batch = await self.store.read_all(after, self.batch_size)
        if not batch:
            if not await self.store.wait_for(after, timeout):
                return 0
            batch = await self.store.read_all(after, self.batch_size)
        await self.transport.publish(self.store.service, batch)
        await self.store.save_checkpoint(CHECKPOINT, batch[-1].position)
        return len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Publishes until ``stop`` is set; backs off and retries on backend errors."""
        while not stop.is_set():
            try:
                await self.step(timeout=0.5)
            except BicameralError as exc:
                log.warning("relay %s: %s; retrying", self.store.service, exc)
                await asyncio.sleep(1.0)
