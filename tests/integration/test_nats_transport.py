"""The transport contract against the NATS JetStream server, each test under its own prefix."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import nats
import pytest

from bicameral.errors import BackendError
from bicameral.ports import Transport
from bicameral.testing import TransportContract, require_server
from bicameral.testing.contracts.transport import envelopes
from bicameral.transport.nats import NatsTransport, nats_name, split_url

URL = "nats://127.0.0.1:4222"


async def delete_streams(url: str, prefix: str) -> None:
    """Deletes every stream whose name starts with ``prefix`` (upper-cased)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith(prefix.upper() + "_"):
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """Returns a stream prefix unique to the test; deletes its streams afterwards."""
    require_server("nats")
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    await delete_streams(URL, name)


class TestNatsTransport(TransportContract):
    @pytest.fixture(autouse=True)
    def _prefix(self, prefix: str) -> None:
        self.url = f"{URL}?prefix={prefix}"

    async def make_transport(self) -> Transport:
        return NatsTransport(self.url)


def test_names_are_made_safe_for_nats() -> None:
    assert nats_name("inventory") == "inventory"
    assert nats_name("orders.products.v1").startswith("orders_products_v1_")
    assert nats_name("a.b") != nats_name("a_b")
    assert split_url("nats://h:4222?prefix=shop") == ("nats://h:4222", "shop")
    assert split_url("nats://h:4222") == ("nats://h:4222", "bicameral")


async def test_publishers_with_stale_tails_keep_the_stream_in_order(prefix: str) -> None:
    """The stream keeps positions in order: a stale tail is refreshed, held events skipped."""
    first, second = NatsTransport(f"{URL}?prefix={prefix}"), NatsTransport(f"{URL}?prefix={prefix}")
    await first.start()
    await second.start()
    try:
        sent = envelopes("svc", 1, 8)
        await first.publish("svc", sent[:5])
        await second.publish("svc", sent[:3])
        await second.publish("svc", sent[3:8])
        await first.publish("svc", sent[5:8])
        assert await first.head("svc") == 8
        sub = await first.subscribe("svc", "reader", 0)
        got = await sub.fetch(100, 2.0)
        await sub.close()
        assert [e.position for e in got] == list(range(1, 9))
    finally:
        await first.close()
        await second.close()


async def test_head_of_an_unknown_source_is_zero(prefix: str) -> None:
    transport = NatsTransport(f"{URL}?prefix={prefix}")
    await transport.start()
    try:
        assert await transport.head("nobody") == 0
    finally:
        await transport.close()


async def test_an_unreachable_server_is_a_backend_error() -> None:
    transport = NatsTransport("nats://127.0.0.1:1", connect_timeout=1.0)
    with pytest.raises(BackendError, match="cannot reach nats"):
        await transport.start()


async def test_a_batch_that_would_leave_a_gap_is_refused(prefix: str) -> None:
    transport = NatsTransport(f"{URL}?prefix={prefix}")
    await transport.start()
    try:
        sent = envelopes("svc", 1, 6)
        await transport.publish("svc", sent[:3])
        with pytest.raises(BackendError, match="would leave a gap"):
            await transport.publish("svc", sent[4:])
        assert await transport.head("svc") == 3
        await transport.publish("svc", sent[3:])
        assert await transport.head("svc") == 6
    finally:
        await transport.close()


async def test_a_restarted_relay_republishes_events_the_stream_lost(prefix: str) -> None:
    """A relay checkpoint past the stream's end (acked, then lost in a crash) is published again."""
    from bicameral.envelope import NewEvent
    from bicameral.eventstore.memory import MemoryEventStore
    from bicameral.ports import StreamAppend
    from bicameral.workers.relay import CHECKPOINT, Relay

    store = MemoryEventStore("svc")
    events = [NewEvent("svc.Happened", {"n": n}) for n in range(5)]
    await store.append([StreamAppend("s-1", None, events)])
    transport = NatsTransport(f"{URL}?prefix={prefix}")
    await transport.start()
    try:
        await transport.publish("svc", (await store.read_all(0, 100))[:3])
        await store.save_checkpoint(CHECKPOINT, 5)
        assert await Relay(store, transport).step(timeout=0) == 2
        assert await transport.head("svc") == 5
        sub = await transport.subscribe("svc", "reader", 2)
        got = await sub.fetch(100, 2.0)
        await sub.close()
        assert [e.position for e in got] == [3, 4, 5]
    finally:
        await transport.close()


async def test_head_skips_deleted_messages_at_the_end(prefix: str) -> None:
    transport = NatsTransport(f"{URL}?prefix={prefix}")
    await transport.start()
    try:
        await transport.publish("svc", envelopes("svc", 1, 5))
        for seq in (4, 5):
            await transport.js.delete_msg(transport.stream("svc"), seq)
        assert await transport.head("svc") == 3
        sub = await transport.subscribe("svc", "reader", 1)
        got = await sub.fetch(100, 2.0)
        await sub.close()
        assert [e.position for e in got] == [2, 3]
    finally:
        await transport.close()


async def test_a_deleted_stream_is_created_again(prefix: str) -> None:
    transport = NatsTransport(f"{URL}?prefix={prefix}")
    await transport.start()
    try:
        await transport.publish("svc", envelopes("svc", 1, 2))
        await transport.js.delete_stream(transport.stream("svc"))
        with pytest.raises(BackendError):
            await transport.publish("svc", envelopes("svc", 3, 3))
        await transport.publish("svc", envelopes("svc", 1, 1))
        assert await transport.head("svc") == 1
    finally:
        await transport.close()


async def test_a_message_carries_its_events_trace_context_as_headers(prefix: str) -> None:
    transport = NatsTransport(f"{URL}?prefix={prefix}")
    await transport.start()
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    traced, untraced = envelopes("svc", 1, 2)
    traced = replace(traced, metadata={**traced.metadata, **trace, "tracestate": "v=1"})
    try:
        await transport.publish("svc", [traced, untraced])
        first = await transport.js.get_msg(transport.stream("svc"), 1)
        second = await transport.js.get_msg(transport.stream("svc"), 2)
        assert first.headers is not None
        assert first.headers["traceparent"] == trace["traceparent"]
        assert first.headers["tracestate"] == "v=1"
        assert "traceparent" not in (second.headers or {})
    finally:
        await transport.close()
