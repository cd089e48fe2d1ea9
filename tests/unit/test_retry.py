"""Retry: transient failures back off exponentially with jitter, capped, and stop promptly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bicameral.errors import BackendError, RuleViolation
from bicameral.workers.retry import Backoff, retrying, supervise


class Clock:
    """A pause that waits for nothing and records how long it was asked to wait."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.waits: list[float] = []
        self.stop_after = stop_after

    async def __call__(self, delay: float, stop: asyncio.Event) -> None:
        self.waits.append(delay)
        if self.stop_after is not None and len(self.waits) >= self.stop_after:
            stop.set()


def test_delays_double_from_first_to_the_cap_without_jitter() -> None:
    backoff = Backoff(first=0.5, cap=30.0, jitter=lambda: 1.0)
    assert [backoff.delay() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_reset_starts_the_doubling_over() -> None:
    backoff = Backoff(first=1.0, jitter=lambda: 1.0)
    backoff.delay(), backoff.delay()
    backoff.reset()
    assert backoff.delay() == 1.0


@given(
    jitters=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=200),
    first=st.floats(0.001, 5.0),
    cap=st.floats(0.01, 60.0),
)
def test_every_delay_is_in_the_upper_half_of_its_capped_ceiling(
    jitters: list[float], first: float, cap: float
) -> None:
    draws = iter(jitters)
    backoff = Backoff(first=first, cap=cap, jitter=lambda: next(draws))
    for n in range(len(jitters)):
        ceiling = min(cap, first * 2.0 ** min(n, 64))
        assert ceiling / 2 <= backoff.delay() <= ceiling


async def test_retrying_backs_off_on_transient_failures_and_resets_on_success() -> None:
    outcomes: list[Exception | None] = [BackendError("down")] * 3 + [None, BackendError("down")]
    calls = 0
    clock = Clock(stop_after=4)
    stop = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        outcome = outcomes[calls]
        calls += 1
        if outcome is not None:
            raise outcome

    backoff = Backoff(first=1.0, jitter=lambda: 1.0, pause=clock)
    await retrying(step, stop, name="w", backoff=backoff)
    assert calls == 5
    assert clock.waits == [1.0, 2.0, 4.0, 1.0]


async def test_retrying_stops_when_asked_without_another_step() -> None:
    calls = 0
    stop = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        stop.set()
        raise TimeoutError

    clock = Clock()
    await retrying(step, stop, name="w", backoff=Backoff(pause=clock))
    assert calls == 1
    assert len(clock.waits) == 1


async def test_a_failure_that_is_not_transient_leaves_the_loop() -> None:
    async def step() -> None:
        raise RuleViolation("bug")

    with pytest.raises(RuleViolation):
        await retrying(step, asyncio.Event(), name="w", backoff=Backoff(pause=Clock()))


async def test_the_default_pause_ends_as_soon_as_stop_is_set() -> None:
    stop = asyncio.Event()
    backoff = Backoff(first=3600.0, cap=3600.0)
    waiting = asyncio.create_task(backoff.wait(stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 5.0) >= 1800.0


class Ticking:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def failing(
    errors: list[Exception], stop: asyncio.Event
) -> tuple[list[int], Callable[[asyncio.Event], Awaitable[None]]]:
    """Returns a run function raising ``errors`` in turn, setting ``stop`` after the last."""
    runs = [0]

    async def run(_: asyncio.Event) -> None:
        runs[0] += 1
        if runs[0] > len(errors):
            stop.set()
            return
        raise errors[runs[0] - 1]

    return runs, run


async def test_supervise_restarts_with_backoff_and_logs_a_traceback_per_change_of_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    errors: list[Exception] = [TypeError("bad sum")] * 9 + [KeyError("k"), TypeError("bad sum")]
    runs, run = failing(errors, stop)
    clock = Clock()
    backoff = Backoff(first=1.0, cap=30.0, jitter=lambda: 1.0, pause=clock)
    with caplog.at_level(logging.DEBUG, logger="bicameral.workers.retry"):
        await supervise(run, stop, name="worker p", backoff=backoff, clock=Ticking())
    assert runs[0] == 12
    assert clock.waits == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30]
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [r.exc_info[1] for r in tracebacks if r.exc_info] == [errors[0], errors[9], errors[10]]
    repeats = [r.getMessage() for r in caplog.records if not r.exc_info]
    assert [m.split("(")[1].split(" ")[0] for m in repeats] == ["2", "4", "8"]


async def test_supervise_starts_small_again_after_a_long_healthy_run() -> None:
    stop = asyncio.Event()
    _, run = failing([TypeError("x")] * 3, stop)
    clock = Clock()
    backoff = Backoff(first=1.0, cap=30.0, jitter=lambda: 1.0, pause=clock)
    await supervise(run, stop, name="w", backoff=backoff, clock=Ticking(step=40.0))
    assert clock.waits == [1, 1, 1]  # each run "lasted" 40 s, longer than the 30 s cap


async def test_supervise_restarts_a_worker_that_ended_unasked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    calls = 0

    async def run(_: asyncio.Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()

    await supervise(run, stop, name="w", backoff=Backoff(pause=Clock()), clock=Ticking())
    assert calls == 3
    assert "w: ended unasked" in caplog.text


async def test_supervise_returns_once_stopped_and_lets_cancellation_through() -> None:
    stop = asyncio.Event()

    async def run(s: asyncio.Event) -> None:
        await s.wait()

    task = asyncio.create_task(supervise(run, stop, name="w"))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 5.0)
    forever = asyncio.create_task(supervise(run, asyncio.Event(), name="w"))
    await asyncio.sleep(0)
    forever.cancel()
    with pytest.raises(asyncio.CancelledError):
        await forever
