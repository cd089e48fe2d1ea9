"""The Node supervises every worker: a failing one is restarted with backoff, logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bicameral.ports import Transport
from bicameral.runtime.backends import BackendFactory
from bicameral.runtime.node import Node
from bicameral.transport.memory import MemoryTransport
from shop.inventory.service import inventory
from tests.unit.test_node_projectors import memory_settings


class BrokenTransport(MemoryTransport):
    """A transport with a bug: asking for its head raises, the same way every time."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0
        self.enough = asyncio.Event()

    async def head(self, source: str) -> int:
        self.asked += 1
        if self.asked >= 4:
            self.enough.set()
        raise TypeError("head is broken")


class WithBrokenTransport(BackendFactory):
    def __init__(self, transport: BrokenTransport) -> None:
        super().__init__()
        self.broken = transport

    def transport(self, url: str) -> Transport:
        made: Transport = self._once("transport", url, lambda: self.broken)
        return made


async def test_a_failing_worker_is_restarted_and_its_traceback_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = BrokenTransport()
    node = Node(memory_settings(), [inventory], ["relay"], factory=WithBrokenTransport(broken))
    with caplog.at_level(logging.INFO, logger="bicameral.node"):
        await node.start()
        try:
            await asyncio.wait_for(broken.enough.wait(), 30.0)  # restarted three times
        finally:
            await node.stop()
    failures = [r for r in caplog.records if "head is broken" in r.getMessage()]
    assert len([r for r in failures if r.exc_info]) == 1
    assert len(failures) < broken.asked  # the repeats are not all logged
