"""The pipelined Redis connection of the read path, against the Redis server: every caller gets
its own reply, in any interleaving, through errors, cancellations and lost connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bicameral.drivers.redis import Lane
from bicameral.errors import BackendError
from bicameral.testing import require_server

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def key() -> AsyncIterator[str]:
    """Returns a hash key unique to the test, holding f0..f99 -> v0..v99; deleted afterwards."""
    require_server("redis")
    name = f"t_lane_{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(URL)
    await client.hset(name, mapping={f"f{n}": f"v{n}" for n in range(100)})
    yield name
    await client.delete(name)
    await client.aclose()


def lane(url: str = URL) -> Lane:
    made = Lane.for_url(url)
    assert made is not None
    return made


async def test_concurrent_callers_each_get_their_own_reply(key: str) -> None:
    one = lane()
    try:
        got = await asyncio.gather(*(one.call("HGET", key, f"f{n % 101}") for n in range(500)))
        assert got == [None if n % 101 == 100 else f"v{n % 101}".encode() for n in range(500)]
    finally:
        one.close()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.integers(0, 120), st.booleans()), min_size=1, max_size=40))
async def test_cancelled_callers_leave_the_others_their_replies(
    key: str, plan: list[tuple[int, bool]]
) -> None:
    """Whichever callers stop waiting, every other caller gets the reply to its own command."""
    one = lane()
    try:
        calls = [asyncio.ensure_future(one.call("HGET", key, f"f{n}")) for n, _ in plan]
        await asyncio.sleep(0)  # queued, not yet answered
        for call, (_, cancel) in zip(calls, plan, strict=True):
            if cancel:
                call.cancel()
        done = await asyncio.gather(*calls, return_exceptions=True)
        for (n, cancel), reply in zip(plan, done, strict=True):
            if cancel:
                assert isinstance(reply, asyncio.CancelledError)
            else:
                assert reply == (f"v{n}".encode() if n < 100 else None)
        assert await one.call("HGET", key, "f7") == b"v7"
    finally:
        one.close()


async def test_an_error_reply_is_a_backend_error_for_its_caller_only(key: str) -> None:
    one = lane()
    try:
        bad, good = await asyncio.gather(
            one.call("LPUSH", key, "x"), one.call("HGET", key, "f1"), return_exceptions=True
        )
        assert isinstance(bad, BackendError)
        assert "WRONGTYPE" in str(bad)
        assert good == b"v1"
    finally:
        one.close()


async def test_a_lost_connection_fails_its_callers_and_the_next_call_connects_again(
    key: str,
) -> None:
    one = lane()
    admin = aioredis.Redis.from_url(URL)
    try:
        client_id = await one.call("CLIENT", "ID")
        waiting = asyncio.ensure_future(one.call("BLPOP", f"{key}:nothing", 5))
        await asyncio.sleep(0.05)
        assert await admin.client_kill_filter(_id=client_id) == 1
        with pytest.raises(BackendError):
            await waiting
        assert await one.call("HGET", key, "f3") == b"v3"
    finally:
        one.close()
        await admin.aclose()


async def test_the_url_selects_the_database(key: str) -> None:
    other = aioredis.Redis.from_url("redis://127.0.0.1:6379/3")
    try:
        await other.set(key, "in db 3")
        three = lane("redis://127.0.0.1:6379/3")
        try:
            assert await three.call("GET", key) == b"in db 3"
        finally:
            three.close()
        zero = lane()
        try:
            assert await zero.call("TYPE", key) == b"hash"
        finally:
            zero.close()
    finally:
        await other.delete(key)
        await other.aclose()


def test_urls_it_does_not_handle_are_left_to_redis_py() -> None:
    assert Lane.for_url("redis://127.0.0.1:6379/0") is not None
    assert Lane.for_url("redis://user:secret@127.0.0.1:6379/2") is not None
    assert Lane.for_url("unix:///tmp/redis.sock?db=1") is not None
    assert Lane.for_url("rediss://127.0.0.1:6380/0") is None
    assert Lane.for_url("redis://127.0.0.1:6379/0?socket_timeout=2") is None


async def test_a_server_that_is_not_there_is_a_backend_error() -> None:
    gone = lane("redis://127.0.0.1:1/0")
    with pytest.raises(BackendError):
        await gone.call("PING")
