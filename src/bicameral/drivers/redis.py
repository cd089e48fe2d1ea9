"""One Redis connection that carries every caller's commands, pipelined: the read path's client.

redis-py's asyncio client takes a connection from its pool for each command, packs it, writes
it, reads the reply through its parser's stream and gives the connection back: about 50 µs of
Python per ``HGET``, some 40% of a query's CPU. Here a command is packed by hiredis and
queued; what every caller queued in one turn of the event loop goes out in one write; one
``asyncio.Protocol`` feeds what arrives to a hiredis reader and hands each reply to the oldest
waiting caller (Redis answers a connection's commands in order). A caller that stops waiting
(cancelled) leaves its reply to be read and dropped, so the order stays right.

``Lane.for_url`` makes one for ``redis://host:port/db`` (user and password allowed) and
``unix://path?db=N``; for any other URL (TLS, timeouts, other options) it returns None and the
adapter keeps redis-py. A connection that fails fails every command waiting on it with a
BackendError; the next command connects again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import UnixDomainSocketConnection, parse_url

from bicameral.errors import BackendError

__all__ = ["Lane"]

_PLAIN = frozenset({"host", "port", "db", "username", "password", "path", "connection_class"})


def _packed(args: tuple[Any, ...]) -> bytes:
    """Returns a command as RESP."""
    return hiredis.pack_command(args)  # type: ignore[no-any-return]


class _Connection(asyncio.Protocol):
    """One open connection: commands queued in order, their replies matched in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = False
        self._failure: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Queues one packed command; returns the future of its reply."""
        if self.closed:
            raise BackendError(f"redis connection lost: {self._failure}")
        reply = self._loop.create_future()
        self._waiting.append(reply)
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(packed)
        return reply

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self._transport is not None and not self.closed:
            self._transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not waiting:
                self._fail(BackendError("redis sent a reply nobody asked for"))
                return
            future = waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(BackendError(f"redis read store: {reply}"))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("closed by the server"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        self._failure = exc
        waiting, self._waiting = self._waiting, deque()
        for future in waiting:
            if not future.done():
                future.set_exception(BackendError(f"redis connection lost: {exc}"))
        if self._transport is not None:
            self._transport.close()

    def close(self) -> None:
        """Closes the connection; commands still waiting fail."""
        self._fail(ConnectionError("closed"))


class Lane:
    """Commands to one Redis server, every caller's pipelined on one connection."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._live: _Connection | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def for_url(cls, url: str) -> Lane | None:
        """Returns a lane to the server at ``url``, or None for a URL it does not handle."""
        options = parse_url(url)
        if not set(options) <= _PLAIN:
            return None
        kind = options.get("connection_class")
        if kind is not None and kind is not UnixDomainSocketConnection:
            return None
        return cls(dict(options))

    async def call(self, *args: str | bytes | int) -> Any:
        """Returns the reply to one command (BackendError for an error reply or a lost
        connection)."""
        live = self._live
        if live is None or live.closed:
            live = await self._connect()
        return await live.send(_packed(args))

    async def _connect(self) -> _Connection:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            live = self._live
            if live is None or live.closed:
                live = self._live = await self._open()
        return live

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        opts = self._options
        try:
            if "path" in opts:
                _, made = await loop.create_unix_connection(_Connection, opts["path"])
            else:
                host, port = opts.get("host", "localhost"), int(opts.get("port", 6379))
                _, made = await loop.create_connection(_Connection, host, port)
        except OSError as exc:
            raise BackendError(f"cannot reach redis: {exc}") from exc
        try:
            if opts.get("password") is not None:
                user = opts.get("username")
                login = (user, opts["password"]) if user else (opts["password"],)
                await made.send(_packed(("AUTH", *login)))
            if opts.get("db"):
                await made.send(_packed(("SELECT", int(opts["db"]))))
        except BaseException:
            made.close()
            raise
        return made

    def close(self) -> None:
        """Closes the connection (the next command opens another)."""
        if self._live is not None:
            self._live.close()
            self._live = None
