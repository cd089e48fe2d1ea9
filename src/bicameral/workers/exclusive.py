"""Exclusive: of several copies of a worker (relays, reaction runners), one works at a time.

The copy holding the worker's lease runs its steps and renews the lease once a third of its
time-to-live has passed since the last renewal (not with every step: a round trip to the store
per step cost as much as the step), so every step starts with two thirds of the lease left and
waits at most a third of it for work; the others stand by and take over once it expires (a
killed copy) or is released (a stopped one). The lease saves work only: a copy that overruns
its lease while another takes over still changes nothing twice, because the transport drops
republished events by id and reactions carry idempotency keys, and it cannot move the
worker's checkpoint back, because checkpoints move by compare-and-set. Transient failures (of
the lease or of the worker) are retried with backoff; any other leaves ``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from bicameral.ports import ReadStore
from bicameral.workers.retry import pause, retrying

__all__ = ["Exclusive", "Steppable"]

log = logging.getLogger("bicameral.workers.exclusive")


class Steppable(Protocol):
    """A worker that does its work in steps."""

    async def step(self, timeout: float = 1.0) -> int:
        """Does the next piece of work, waiting up to ``timeout`` for some; returns its size."""
        ...

    def reset(self) -> None:
        """Forgets what it cached, because another copy may move on meanwhile."""
        ...


class Exclusive:
    """Runs ``worker`` only while ``owner`` holds lease ``name`` in ``leases``."""

    def __init__(
        self, worker: Steppable, leases: ReadStore, name: str, owner: str, ttl: float
    ) -> None:
        self.worker = worker
        self.leases = leases
        self.name = name
        self.owner = owner
        self.ttl = ttl

    async def run(self, stop: asyncio.Event) -> None:
        """Steps the worker while holding the lease, until ``stop`` is set; then releases it.

        The worker is reset when this copy takes the lease and when it gives it up (another
        copy holds it, or ``stop``), not after a failed step: a worker whose backend is away
        still reports its growing lag.
        """
        holding = acquired = False  # held at the last try; held at all
        working = False  # the worker stepped since it was last reset
        loop = asyncio.get_running_loop()
        renew_at = 0.0  # when the lease held is next renewed (loop time)

        async def held() -> bool:
            """Returns whether this copy holds the lease, renewing it when it is due."""
            nonlocal renew_at
            asked = loop.time()
            if holding and asked < renew_at:
                return True
            if not await self.leases.acquire_lease(self.name, self.owner, self.ttl):
                return False
            renew_at = asked + self.ttl / 3
            return True

        async def turn() -> None:
            nonlocal holding, acquired, working
            try:
                if await held():
                    acquired = True
                    if not holding:
                        self.worker.reset()
                        holding = True
                    working = True
                    await self.worker.step(timeout=min(0.5, self.ttl / 3))
                    return
            except BaseException:
                holding = False  # unsure: the worker is reset when the lease is next held
                raise
            holding = False
            if working:
                self.worker.reset()
                working = False
            await pause(min(1.0, self.ttl / 3), stop)

        try:
            await retrying(turn, stop, name=self.name, logger=log)
        finally:
            if working:
                self.worker.reset()
            if acquired:
                with contextlib.suppress(Exception):
                    await self.leases.release_lease(self.name, self.owner)

    def __repr__(self) -> str:
        return f"Exclusive({self.name!r}, owner={self.owner!r})"
