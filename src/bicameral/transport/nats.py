"""NatsTransport: the transport port on NATS JetStream, one stream per source service.

Stream ``BICAMERAL_<source>`` holds subjects ``bicameral.<source>.>`` (the prefix is chosen in
the URL: ``nats://127.0.0.1:4222?prefix=shop``); each event is a CloudEvents JSON message on
``bicameral.<source>.<type>`` with ``Nats-Msg-Id`` set to the event id.

Publishes are pipelined and chained: each message carries ``Nats-Expected-Last-Sequence``, so
the server stores it only right after its predecessor. The stream therefore always holds a
prefix of the log in position order, whatever was lost or resent around a crash. Events at or
below the stream's last position are not sent again, and a batch that would leave a gap after
it (the server lost acknowledged events in a crash) is refused, so the caller (the relay)
resumes from ``head``. Subscribers are durable pull consumers with explicit acks, started at
the first stream sequence above the subscriber's position and re-positioned after a reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import deque
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api

from bicameral.envelope import Envelope, decode, encode
from bicameral.errors import BackendError, ConfigurationError
from bicameral.tracing import trace_headers

__all__ = ["NatsSubscription", "NatsTransport", "nats_name", "split_url"]

log = logging.getLogger("bicameral.transport.nats")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_WRONG_LAST_SEQUENCE = 10071
_STREAM_NAME_IN_USE = 10058
_ATTEMPTS = 3
_REQUEST_ENDED = {"404", "408", "409"}
_MIN_PULL = 0.01
_LINGER = 0.001
_WALK_BACK = 10_000


def nats_name(name: str) -> str:
    """Returns ``name`` as a safe stream, consumer or subject-token name (hashed if changed)."""
    safe = _UNSAFE.sub("_", name)
    if safe != name or not safe:
        safe = f"{safe}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return safe


def _subject_token(name: str) -> str:
    return _UNSAFE.sub("_", name) or "_"


def split_url(url: str) -> tuple[str, str]:
    """Returns the server URL without ``prefix`` and the stream prefix (default ``bicameral``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "bicameral")
    if not prefix or _UNSAFE.search(prefix):
        raise ConfigurationError(f"invalid nats prefix {prefix!r}: use letters, digits, _ and -")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def _failed(what: str, exc: BaseException) -> BackendError:
    return BackendError(f"nats {what} failed: {type(exc).__name__} {exc}".strip())


class NatsTransport:
    """Carries events between services through NATS JetStream."""

    def __init__(self, url: str, *, ack_timeout: float = 5.0, connect_timeout: float = 5.0) -> None:
        self.url, self.prefix = split_url(url)
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.epoch = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._streams: set[str] = set()
        self._tails: dict[str, tuple[int, int]] = {}
        self._subjects: dict[tuple[str, str], str] = {}
        self._ack_prefix = ""
        self._ack_count = 0
        self._acks: dict[str, asyncio.Future[tuple[int, bool]]] = {}

    async def start(self) -> None:
        """Connects; streams are created when a source is first used (idempotent)."""
        if self._nc is not None:
            return
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=[self.url],
                    reconnect_time_wait=0.5,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    connect_timeout=2,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnect,
                    reconnected_cb=self._on_reconnect,
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await nc.close()
            raise BackendError(f"cannot reach nats at {self.url}: {exc or 'timeout'}") from exc
        self._nc = nc
        self._js = nc.jetstream(timeout=self.ack_timeout)

    async def close(self) -> None:
        """Closes the connection."""
        if self._nc is not None:
            nc, self._nc, self._js = self._nc, None, None
            self._ack_prefix = ""
            await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("nats %s: %s", self.url, exc)

    async def _on_disconnect(self) -> None:
        self.epoch += 1
        self._tails.clear()

    async def _on_reconnect(self) -> None:
        self.epoch += 1
        self._tails.clear()
        log.info("nats %s: reconnected", self.url)

    @property
    def nc(self) -> Client:
        """Returns the connected client."""
        if self._nc is None:
            raise BackendError("transport is not started")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        """Returns the JetStream context."""
        if self._js is None:
            raise BackendError("transport is not started")
        return self._js

    async def ping(self) -> None:
        """Returns once JetStream answered a request (its account information)."""
        try:
            await self.js.account_info()
        except (nats.errors.Error, TimeoutError) as exc:
            raise BackendError(f"nats unreachable at {self.url}: {exc or 'timeout'}") from exc

    def stream(self, source: str) -> str:
        """Returns the stream name of ``source``."""
        return f"{self.prefix.upper()}_{nats_name(source)}"

    def subject(self, source: str, type_name: str = ">") -> str:
        """Returns the subject of ``source``'s events of ``type_name`` (all with ``>``)."""
        found = self._subjects.get((source, type_name))
        if found is None:
            tokens = type_name.split(".") if type_name != ">" else [">"]
            head = f"{self.prefix}.{nats_name(source)}"
            found = ".".join([head, *(t if t == ">" else _subject_token(t) for t in tokens)])
            self._subjects[(source, type_name)] = found
        return found

    def forget(self, source: str) -> None:
        """Makes the next use of ``source`` check its stream exists again."""
        self._streams.discard(self.stream(source))
        self._tails.pop(source, None)

    async def ensure(self, source: str) -> str:
        """Creates the stream of ``source`` if missing; returns its name."""
        name = self.stream(source)
        if name in self._streams:
            return name
        config = api.StreamConfig(
            name=name,
            subjects=[self.subject(source)],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=120.0,
        )
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise _failed(f"creating stream {name}", exc) from exc
        except (nats.errors.Error, TimeoutError) as exc:
            raise _failed(f"creating stream {name}", exc) from exc
        self._streams.add(name)
        return name

    async def _position(self, source: str, seq: int) -> int:
        """Returns the position of the first message at or after ``seq`` (0 if none)."""
        try:
            msg = await self.js.get_msg(
                self.stream(source), seq, subject=self.subject(source), next=True
            )
        except nats.js.errors.NotFoundError:
            return 0
        return decode(msg.data or b"").position

    async def _walk_back(self, stream: str, last: int, first: int) -> int:
        """Returns the position of the last message at or before ``last`` (deleted ones skipped)."""
        for seq in range(last, max(first, last - _WALK_BACK) - 1, -1):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                return decode((await self.js.get_msg(stream, seq)).data or b"").position
        return 0

    async def _tail(self, source: str, stream: str) -> tuple[int, int]:
        """Returns the last message's position (0 if none) and the stream's last sequence."""
        info = await self.js.stream_info(stream)
        position = 0
        if info.state.messages:
            try:
                msg = await self.js.get_msg(stream, subject=self.subject(source))
                position = decode(msg.data or b"").position
            except nats.js.errors.NotFoundError:
                position = await self._walk_back(stream, info.state.last_seq, info.state.first_seq)
        tail = (position, info.state.last_seq)
        self._tails[source] = tail
        return tail

    async def publish(self, source: str, envelopes: Sequence[Envelope]) -> None:
        """Writes events after the stream's last position, in order, each acked; else raises.

        Raises BackendError, sending nothing, when the first new event does not follow the
        stream's last position: the server lost events, and the caller resumes from ``head``.
        """
        if not envelopes:
            return
        try:
            stream = await self.ensure(source)
            for attempt in range(_ATTEMPTS):
                cached = self._tails.get(source)
                tail = cached or await self._tail(source, stream)
                todo = [e for e in envelopes if e.position > tail[0]]
                if not todo:
                    return
                known = tail[0] > 0 or tail[1] == 0
                if known and todo[0].position != tail[0] + 1:
                    self._tails.pop(source, None)
                    if cached is not None:
                        continue
                    raise BackendError(
                        f"the stream of {source} ends at position {tail[0]}; publishing "
                        f"{todo[0].position} would leave a gap (resume from head())"
                    )
                try:
                    await self._send(source, todo, tail[1])
                    return
                except nats.js.errors.BadRequestError as exc:
                    self._tails.pop(source, None)
                    if exc.err_code != _WRONG_LAST_SEQUENCE or attempt == _ATTEMPTS - 1:
                        raise
            raise BackendError(f"the stream of {source} keeps moving under the publish")
        except (nats.errors.Error, TimeoutError) as exc:
            self.forget(source)
            raise _failed(f"publish to {source}", exc) from exc

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.pop(msg.subject[len(self._ack_prefix) :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(api.Header.STATUS) == "503":
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        reply = orjson.loads(msg.data)
        if "error" in reply:
            future.set_exception(nats.js.errors.APIError.from_error(reply["error"]))
        else:
            future.set_result((int(reply["seq"]), bool(reply.get("duplicate"))))

    async def _send(self, source: str, todo: Sequence[Envelope], last_seq: int) -> None:
        """Publishes ``todo`` chained after ``last_seq``; raises unless every one is acked."""
        nc, loop = self.nc, asyncio.get_running_loop()
        if not self._ack_prefix:
            self._ack_prefix = nc.new_inbox() + "."
            await nc.subscribe(self._ack_prefix + "*", cb=self._on_ack)
        futures: list[asyncio.Future[tuple[int, bool]]] = []
        tokens: list[str] = []
        try:
            for index, env in enumerate(todo):
                self._ack_count += 1
                token = str(self._ack_count)
                tokens.append(token)
                future: asyncio.Future[tuple[int, bool]] = loop.create_future()
                self._acks[token] = future
                futures.append(future)
                headers = {
                    "Nats-Msg-Id": env.id,
                    "Nats-Expected-Last-Sequence": str(last_seq + index),
                }
                if env.metadata.get("traceparent"):  # W3C trace context, as in the CloudEvent
                    headers.update(trace_headers(env.metadata))
                await nc.publish(
                    self.subject(source, env.type),
                    encode(env),
                    reply=self._ack_prefix + token,
                    headers=headers,
                )
            done, pending = await asyncio.wait(futures, timeout=self.ack_timeout)
        finally:
            for token in tokens:
                self._acks.pop(token, None)
            for future in futures:
                if not future.done():
                    future.cancel()
        failures = [f.exception() for f in futures if f in done and f.exception() is not None]
        if failures:
            raise failures[0]  # type: ignore[misc]
        if pending:
            raise nats.errors.TimeoutError
        acks = [f.result() for f in futures]
        if any(duplicate for _, duplicate in acks):
            self._tails.pop(source, None)
        else:
            self._tails[source] = (todo[-1].position, acks[-1][0])

    async def subscribe(self, source: str, consumer: str, after_position: int) -> NatsSubscription:
        """Returns a durable pull subscription to ``source`` above ``after_position``."""
        sub = NatsSubscription(self, source, nats_name(consumer), after_position)
        await sub.open()
        return sub

    async def head(self, source: str) -> int:
        """Returns the highest position the stream of ``source`` holds (0 when none)."""
        try:
            return (await self._tail(source, self.stream(source)))[0]
        except nats.js.errors.NotFoundError:
            return 0
        except (nats.errors.Error, TimeoutError) as exc:
            raise _failed(f"head of {source}", exc) from exc

    async def first_sequence_after(self, source: str, position: int) -> int:
        """Returns the stream sequence from which messages hold positions above ``position``."""
        info = await self.js.stream_info(self.stream(source))
        low, high = max(info.state.first_seq, 1), info.state.last_seq + 1
        if position <= 0 or info.state.messages == 0:
            return low if info.state.messages else high
        while low < high:
            mid = (low + high) // 2
            if await self._position(source, mid) > position:
                high = mid
            else:
                low = mid + 1
        return low


class NatsSubscription:
    """A durable pull consumer of one stream, re-positioned after reconnects.

    Pull requests ask for a batch that may linger until it expires; whatever they deliver is
    buffered, so a fetch returns buffered events at once and waits only when none are left.
    """

    def __init__(self, transport: NatsTransport, source: str, durable: str, after: int) -> None:
        self._transport = transport
        self._source = source
        self._stream = transport.stream(source)
        self._durable = durable
        self._after = after
        self._epoch = -1
        self._inbox: Subscription | None = None
        self._buffer: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._owed = 0
        self._owed_until = 0.0
        self._unacked: dict[str, list[Msg]] = {}

    async def open(self) -> None:
        """(Re)creates the durable consumer at the first message above the position."""
        transport = self._transport
        js = transport.js
        self._epoch = transport.epoch
        await self._drop_inbox()
        try:
            await transport.ensure(self._source)
            start = await transport.first_sequence_after(self._source, self._after)
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(self._stream, self._durable)
            await js.add_consumer(
                self._stream,
                api.ConsumerConfig(
                    durable_name=self._durable,
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=start,
                    ack_policy=api.AckPolicy.EXPLICIT,
                    ack_wait=30.0,
                    max_ack_pending=20_000,
                ),
            )
            nc = transport.nc
            self._inbox = await nc.subscribe(nc.new_inbox(), cb=self._on_msg)
        except (nats.errors.Error, TimeoutError) as exc:
            self._epoch = -1
            transport.forget(self._source)
            raise _failed(f"subscribing {self._durable} to {self._stream}", exc) from exc

    async def _on_msg(self, msg: Msg) -> None:
        if msg.data or not msg.headers or api.Header.STATUS not in msg.headers:
            self._buffer.append(msg)
            self._owed -= 1
        elif msg.headers[api.Header.STATUS] in _REQUEST_ENDED:
            self._owed = 0
        self._arrived.set()

    async def _drop_inbox(self) -> None:
        inbox, self._inbox = self._inbox, None
        self._buffer.clear()
        self._unacked.clear()
        self._owed = 0
        if inbox is not None:
            try:
                await inbox.unsubscribe()
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("nats unsubscribe: %s", exc)

    async def _pull(self, batch: int, timeout: float) -> None:
        assert self._inbox is not None
        loop = asyncio.get_running_loop()
        if self._owed > 0 and loop.time() < self._owed_until:
            return
        expires = max(timeout, _MIN_PULL)
        self._owed, self._owed_until = batch, loop.time() + expires
        request = orjson.dumps({"batch": batch, "expires": int(expires * 1e9)})
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._durable}"
        await self._transport.nc.publish(subject, request, reply=self._inbox.subject)

    async def fetch(self, max_events: int, timeout: float) -> list[Envelope]:
        """Returns the next events in stream order, [] when none came within ``timeout``."""
        if self._epoch != self._transport.epoch or self._inbox is None:
            await self.open()
        try:
            if not self._buffer:
                await self._wait(max(1, max_events), timeout)
        except nats.errors.Error as exc:
            self._epoch = -1
            raise _failed(f"fetch from {self._stream}", exc) from exc
        found: list[Envelope] = []
        while self._buffer and len(found) < max_events:
            msg = self._buffer.popleft()
            env = decode(msg.data)
            self._unacked.setdefault(env.id, []).append(msg)
            found.append(env)
        if found:
            self._after = max(self._after, found[-1].position)
        return found

    async def _wait(self, batch: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pulled = False
        while not self._buffer:
            left = deadline - loop.time()
            if pulled and left <= 0:
                return
            self._arrived.clear()
            await self._pull(batch, left)
            pulled = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max(left, _MIN_PULL))
        while 0 < len(self._buffer) < batch and self._owed > 0:
            seen = len(self._buffer)
            await asyncio.sleep(_LINGER)
            if len(self._buffer) == seen:
                break

    async def ack(self, envelopes: Sequence[Envelope]) -> None:
        """Acknowledges the messages that carried ``envelopes``."""
        try:
            for env in envelopes:
                for msg in self._unacked.pop(env.id, ()):
                    await msg.ack()
        except (nats.errors.Error, TimeoutError) as exc:
            raise _failed(f"ack on {self._stream}", exc) from exc

    async def close(self) -> None:
        """Stops consuming; the durable consumer stays on the server."""
        await self._drop_inbox()
