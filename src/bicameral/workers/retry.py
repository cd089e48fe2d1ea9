"""Retry: what every background loop does while a backend is away.

A transient failure (a database or broker unreachable, a timeout, a lost connection) is
retried after a pause that doubles with each failure in a row, from ``first`` up to ``cap``
(30 s by default), with jitter so that many workers cut off together do not come back in
step. The pause ends the moment the worker is asked to stop, and the first success starts
the doubling over. One ``Backoff`` per loop; ``retrying`` is the loop itself.

Only transient failures are retried here; anything else leaves the loop, for its supervisor
(``supervise``, which the Node runs every worker under) to hear about: it logs the failure with
its traceback once per change of error and restarts the worker after the same kind of backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bicameral.errors import BackendError, ConcurrencyError

__all__ = ["TRANSIENT", "Backoff", "Pause", "pause", "retrying", "supervise"]

log = logging.getLogger("bicameral.workers.retry")

TRANSIENT: tuple[type[BaseException], ...] = (
    BackendError,
    ConcurrencyError,
    TimeoutError,
    ConnectionError,
)
"""Failures that may pass by themselves: a backend away or slow, a lost connection, another
writer that moved a stream first (a reaction's command still in conflict after its retries)."""

Pause = Callable[[float, asyncio.Event], Awaitable[None]]
"""Waits up to ``delay`` seconds, returning early once ``stop`` is set."""


async def pause(delay: float, stop: asyncio.Event) -> None:
    """Waits ``delay`` seconds, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``first * factor**n`` capped at ``cap``, n failures in.

    Each delay is drawn from the upper half of that ceiling ("equal jitter"), so it never
    collapses to nothing and still spreads workers apart. ``jitter`` (a number in [0, 1)) and
    ``pause`` are injectable, so tests need no clock.
    """

    first: float = 0.1
    cap: float = 30.0
    factor: float = 2.0
    jitter: Callable[[], float] = random.random
    pause: Pause = field(default=pause)
    failures: int = 0

    def ceiling(self) -> float:
        """Returns the longest delay the next failure may wait."""
        return min(self.cap, self.first * self.factor ** min(self.failures, 64))

    def delay(self) -> float:
        """Returns the pause after one more failure, and counts that failure."""
        ceiling = self.ceiling()
        self.failures += 1
        return ceiling / 2 + ceiling / 2 * self.jitter()

    async def wait(self, stop: asyncio.Event) -> float:
        """Counts a failure and pauses for its delay (less if ``stop`` is set); returns it."""
        delay = self.delay()
        await self.pause(delay, stop)
        return delay

    def reset(self) -> None:
        """Forgets the failures: the next delay is ``first`` again."""
        self.failures = 0


async def retrying(
    step: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    name: str,
    retry_on: tuple[type[BaseException], ...] = TRANSIENT,
    backoff: Backoff | None = None,
    logger: logging.Logger = log,
) -> None:
    """Calls ``step`` until ``stop`` is set, backing off after each ``retry_on`` failure.

    Each failure is logged as a warning with the pause that follows it; the first success
    after failures is logged once. Any other exception leaves the loop.
    """
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            await step()
        except retry_on as exc:
            delay = backoff.delay()
            logger.warning("%s: %s; retrying in %.1fs", name, exc or type(exc).__name__, delay)
            await backoff.pause(delay, stop)
        else:
            if backoff.failures:
                logger.info("%s: recovered after %d failures", name, backoff.failures)
                backoff.reset()


async def supervise(
    run: Callable[[asyncio.Event], Awaitable[None]],
    stop: asyncio.Event,
    *,
    name: str,
    backoff: Backoff | None = None,
    logger: logging.Logger = log,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Runs ``run(stop)`` until ``stop`` is set, restarting it with backoff whenever it ends.

    A failure unlike the one before (another class or message) is logged as an error with its
    traceback; the same failure again is a one-line warning at the 2nd, 4th, 8th... time in a
    row, so a worker failing for an hour leaves a dozen lines, not thousands. A run that
    lasted longer than the backoff's cap counts as recovered: the next delay starts small.
    """
    backoff = backoff or Backoff()
    last = ""
    repeats = 0
    while not stop.is_set():
        started = clock()
        error: Exception | None = None
        try:
            await run(stop)
        except Exception as exc:
            error = exc
        if error is None and stop.is_set():
            return
        if clock() - started > backoff.cap:
            backoff.reset()
            last = ""
        delay = backoff.delay()
        what = "ended unasked" if error is None else f"{type(error).__name__}: {error}"
        if what != last:
            last, repeats = what, 1
            logger.error("%s: %s; restarting in %.1fs", name, what, delay, exc_info=error)
        else:
            repeats += 1
            if repeats & (repeats - 1) == 0:
                logger.warning(
                    "%s: %s again (%d times in a row); restarting in %.1fs",
                    name,
                    what,
                    repeats,
                    delay,
                )
        await backoff.pause(delay, stop)
