"""A killed NATS server costs no subscriber an event (a private nats-server; 4222 stays up)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bicameral.envelope import NewEvent
from bicameral.errors import BackendError
from bicameral.eventstore.memory import MemoryEventStore
from bicameral.ports import StreamAppend
from bicameral.transport.nats import NatsTransport
from bicameral.workers.feeds import TransportFeed
from bicameral.workers.relay import Relay

TOTAL = 3000
PER_APPEND = 10


def _nats_server() -> str:
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
    )
    if found is None:
        message = "nats-server is not installed; install it with: apt-get install nats-server"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateNats:
    """A nats-server with JetStream on a spare port and its own store folder."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = _spare_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def store(self) -> str:
        return str(self.folder / "store")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.folder / "nats.log", "ab")  # noqa: SIM115 - the server owns it
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise AssertionError(f"private nats-server did not start: {self.folder / 'nats.log'}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    """Returns a started private nats-server, killed after the test."""
    server = PrivateNats(_nats_server(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.kill()


async def test_a_killed_nats_server_costs_no_subscriber_an_event(
    private_nats: PrivateNats,
) -> None:
    store = MemoryEventStore("svc")
    relay_side = NatsTransport(private_nats.url, ack_timeout=2.0)
    reader_side = NatsTransport(private_nats.url, ack_timeout=2.0)
    await relay_side.start()
    await reader_side.start()
    stop = asyncio.Event()
    relay_task = asyncio.create_task(Relay(store, relay_side, batch_size=200).run(stop))
    feed = TransportFeed("svc", "reader", reader_side)
    got: list[int] = []
    third = asyncio.Event()

    async def write() -> None:
        for n in range(0, TOTAL, PER_APPEND):
            events = [NewEvent("svc.Happened", {"n": n + i}) for i in range(PER_APPEND)]
            await store.append([StreamAppend(f"s-{n % 7}", None, events)])
            await asyncio.sleep(0.002)

    async def read() -> None:
        after = 0
        while len(got) < TOTAL:
            try:
                batch = await feed.fetch(after, 200, 0.5)
                await feed.ack(batch)
            except BackendError:
                await asyncio.sleep(0.2)
                continue
            got.extend(e.position for e in batch)
            if len(got) >= TOTAL // 3:
                third.set()
            if batch:
                after = batch[-1].position

    writer, reader = asyncio.create_task(write()), asyncio.create_task(read())
    try:
        await asyncio.wait_for(third.wait(), 60)
        assert not writer.done(), "the load ended before the kill"
        private_nats.kill()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(private_nats.start)
        await writer
        await asyncio.wait_for(reader, 90)
    finally:
        stop.set()
        writer.cancel()
        reader.cancel()
        await asyncio.gather(relay_task, writer, reader, return_exceptions=True)
        await feed.close()
        await relay_side.close()
        await reader_side.close()
    assert got == list(range(1, TOTAL + 1))
    log = [e.id for e in await store.read_all(0, TOTAL + 1)]
    assert len(log) == TOTAL
