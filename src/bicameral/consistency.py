"""Consistency tokens: the positions a command produced, so a later query can wait for them.

A token maps service names to log positions. Clients treat it as an opaque string.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping

import orjson

from bicameral.errors import InvalidMessageError, NotCaughtUpError

__all__ = ["TOKEN_PATTERN", "ConsistencyToken", "Notifier", "wait_for_positions"]

TOKEN_PATTERN = "^[A-Za-z0-9_-]*$"
"""What an encoded token looks like (URL-safe base64, unpadded); anything else is refused."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]*")


class ConsistencyToken:
    """Immutable ``{service: position}``; ``encode()`` gives the opaque string form."""

    __slots__ = ("positions",)

    def __init__(self, positions: Mapping[str, int] | None = None) -> None:
        self.positions: dict[str, int] = dict(positions or {})

    def encode(self) -> str:
        """Returns the opaque, URL-safe string form."""
        raw = orjson.dumps(self.positions, option=orjson.OPT_SORT_KEYS)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> ConsistencyToken:
        """Returns the token of a string made by ``encode``; InvalidMessageError otherwise."""
        try:
            if _TOKEN.fullmatch(text) is None:
                raise ValueError("not URL-safe base64")
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = orjson.loads(raw)
            if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in data.items()
            ):
                raise ValueError("not a map of positions")
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise InvalidMessageError(
                "malformed consistency token",
                [
                    {
                        "loc": ["header", "X-Consistency-Token"],
                        "msg": str(exc),
                        "type": "value_error",
                    }
                ],
            ) from None
        return cls(data)

    def merge(self, other: ConsistencyToken) -> ConsistencyToken:
        """Returns a token at least as far as both."""
        merged = dict(self.positions)
        for service, position in other.positions.items():
            merged[service] = max(position, merged.get(service, 0))
        return ConsistencyToken(merged)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConsistencyToken) and self.positions == other.positions

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.positions.items())))

    def __repr__(self) -> str:
        return f"ConsistencyToken({self.positions!r})"


class Notifier:
    """Wakes waiters when something moved in this process (a commit, a checkpoint)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wakes every current waiter."""
        self._event.set()
        self._event = asyncio.Event()

    def mark(self) -> asyncio.Event:
        """Returns the wake-up of the next ``notify``: take it before checking a condition,
        then wait on it, so a notify between the check and the wait is not missed."""
        return self._event

    async def wait(self, timeout: float, mark: asyncio.Event | None = None) -> None:
        """Returns after the next ``notify`` (since ``mark``) or ``timeout`` seconds."""
        event = mark or self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


async def wait_for_positions(
    targets: Mapping[str, int],
    read_checkpoint: Callable[[str], Awaitable[int]],
    timeout: float,
    notifier: Notifier | None = None,
    poll: float = 0.05,
) -> None:
    """Returns once every ``read_checkpoint(name) >= position``; else raises NotCaughtUpError."""
    deadline = time.monotonic() + timeout
    pending = dict(targets)
    while True:
        mark = notifier.mark() if notifier is not None else None
        for name, position in list(pending.items()):
            if await read_checkpoint(name) >= position:
                del pending[name]
        if not pending:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(sorted(pending))
            raise NotCaughtUpError(f"read model has not caught up yet ({names}) after {timeout}s")
        if notifier is not None:
            await notifier.wait(min(left, poll), mark)
        else:
            await asyncio.sleep(min(left, poll))
