"""Consistency tokens and waiting for read models to reach them."""

from __future__ import annotations

import asyncio
import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral import ConsistencyToken, InvalidMessageError, NotCaughtUpError
from bicameral.consistency import Notifier, wait_for_positions

positions = st.dictionaries(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.integers(0, 2**63 - 1),
    max_size=6,
)


@given(positions)
def test_a_token_survives_its_string_form(found: dict[str, int]) -> None:
    token = ConsistencyToken(found)
    text = token.encode()
    assert ConsistencyToken.decode(text) == token
    assert re.fullmatch(r"[A-Za-z0-9_-]*", text), "the token is not URL-safe"


@given(positions, positions)
def test_merge_takes_the_furthest_position_of_each_service(
    a: dict[str, int], b: dict[str, int]
) -> None:
    merged = ConsistencyToken(a).merge(ConsistencyToken(b)).positions
    assert set(merged) == set(a) | set(b)
    for service, position in merged.items():
        assert position == max(a.get(service, 0), b.get(service, 0))
    assert ConsistencyToken(b).merge(ConsistencyToken(a)).positions == merged


@given(positions)
def test_equal_tokens_hash_alike(found: dict[str, int]) -> None:
    assert hash(ConsistencyToken(found)) == hash(ConsistencyToken(dict(reversed(found.items()))))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a token!",
        "%%%",
        _b64(b"not json"),
        _b64(b"[1, 2]"),
        _b64(b'{"inventory": -1}'),
        _b64(b'{"inventory": "12"}'),
        _b64(b'{"inventory": 1.5}'),
        _b64(b"\xff\xfe"),
    ],
)
def test_a_malformed_token_is_an_invalid_message_naming_the_header(text: str) -> None:
    with pytest.raises(InvalidMessageError) as info:
        ConsistencyToken.decode(text)
    assert info.value.errors[0]["loc"] == ["header", "X-Consistency-Token"]


async def test_waiting_returns_at_once_when_every_checkpoint_is_there() -> None:
    checkpoints = {"a": 5, "b": 9}

    async def read(name: str) -> int:
        return checkpoints[name]

    await wait_for_positions({"a": 5, "b": 3}, read, timeout=0.0)


async def test_waiting_returns_once_the_checkpoint_moves() -> None:
    checkpoints = {"a": 0}
    notifier = Notifier()

    async def read(name: str) -> int:
        return checkpoints[name]

    async def advance() -> None:
        await asyncio.sleep(0.01)
        checkpoints["a"] = 7
        notifier.notify()

    mover = asyncio.create_task(advance())
    await wait_for_positions({"a": 7}, read, timeout=5.0, notifier=notifier)
    await mover


async def test_waiting_past_the_timeout_is_not_caught_up_naming_the_laggard() -> None:
    async def read(name: str) -> int:
        return {"fast": 10, "slow": 1}[name]

    with pytest.raises(NotCaughtUpError) as info:
        await wait_for_positions({"fast": 2, "slow": 2}, read, timeout=0.05, poll=0.01)
    assert "slow" in info.value.detail
    assert "fast" not in info.value.detail
    assert info.value.status == 503


async def test_a_notifier_wakes_every_waiter() -> None:
    notifier = Notifier()
    waiters = [asyncio.create_task(notifier.wait(5.0)) for _ in range(3)]
    await asyncio.sleep(0)
    notifier.notify()
    done, _ = await asyncio.wait(waiters, timeout=5.0)
    assert len(done) == 3
