"""RedisReadStore: the read store port on Redis, every commit one Lua script.

The scripts ship beside this module as ``redis_<name>.lua`` (commit, find, acquire, release,
leases).

Keys, under a prefix chosen in the URL (``redis://host:6379/0?prefix=shop_orders``)::

    {p}:checkpoints          hash  checkpoint name -> position
    {p}:m:{collection}       JSON list of the collection's indexed fields
    {p}:d:{collection}       hash  key -> the document's index values joined by \\x01, then
                             \\x02, then the document JSON
    {p}:i:{collection}/{f}   sorted set (lexicographic) of ``value \\x00 key`` for field f
    {p}:lease:{name}         lease owner, expiring with the lease; {p}:leases names them
    {p}:dlq:seq:{id}         hash  a parked sequence's consumer, key and last failure
    {p}:dlq:ev:{id}          list  its events in order, each ``event id \x00 CloudEvents JSON``
    {p}:dlq:open:{consumer}  hash  key -> id of the consumer's open sequence for that key
    {p}:dlq:ids              set   every sequence id; {p}:dlq:skipped  list of skip records

A commit checks the checkpoint, every collection's indexed fields and the parks, then writes
documents, index entries, parked events and the new checkpoint, all in one script, so a
redelivered or raced batch changes nothing. Index values are canonical JSON made here, so
``find`` compares them exactly; keeping a document's old values beside it lets the script move
its index entries on update.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from bicameral.commits import Commits
from bicameral.drivers.redis import Lane
from bicameral.drivers.resources import resource
from bicameral.envelope import Envelope
from bicameral.errors import BackendError, ConfigurationError
from bicameral.parking import Failure, Park, ParkedSequence, Skipped, event_of, event_text
from bicameral.ports import Changes
from bicameral.readstore import checked_name
from bicameral.readstore.redis_commits import redis_watcher

__all__ = ["RedisReadStore", "index_value", "split_url"]

P = ParamSpec("P")
T = TypeVar("T")

_CHUNK = 500
_STALE_FIELDS = -1


def _script(name: str) -> str:
    """Returns the Lua script ``redis_<name>.lua`` shipped beside this module."""
    return resource("bicameral.readstore", f"redis_{name}.lua")


def _with_lib(name: str) -> str:
    """Returns ``redis_<name>.lua`` after the shared functions of ``redis_lib.lua``."""
    return _script("lib") + _script(name)


def _translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except RedisError as exc:
            raise BackendError(f"redis read store: {exc}") from exc

    return call


_HEAD32 = struct.Struct(">BI")
"""A MessagePack head with a 32-bit length: array (0xDD) or string (0xDB)."""


def _framed(puts: list[tuple[str, dict[str, Any]]], fields: list[str], dels: list[str]) -> bytes:
    """Returns a collection's writes as one MessagePack array of strings (read by the script's
    cmsgpack): each put's key, stored value and index values, then the deleted keys."""
    pack, dumps = _HEAD32.pack, orjson.dumps
    out = [pack(0xDD, len(puts) * (2 + len(fields)) + len(dels))]
    add = out.append
    if len(fields) == 1:
        field = fields[0]
        for key, doc in puts:
            k = key.encode()
            enc = _index_bytes(doc[field]) if field in doc else b""
            v = enc + b"\x02" + dumps(doc)
            add(
                b"%b%b%b%b%b%b"
                % (pack(0xDB, len(k)), k, pack(0xDB, len(v)), v, pack(0xDB, len(enc)), enc)
            )
    else:
        for key, doc in puts:
            k = key.encode()
            encs = [_index_bytes(doc[f]) if f in doc else b"" for f in fields]
            v = b"\x01".join(encs) + b"\x02" + dumps(doc)
            add(b"%b%b%b%b" % (pack(0xDB, len(k)), k, pack(0xDB, len(v)), v))
            for enc in encs:
                add(pack(0xDB, len(enc)) + enc)
    for key in dels:
        k = key.encode()
        add(pack(0xDB, len(k)) + k)
    return b"".join(out)


def _document(stored: bytes | str) -> dict[str, Any]:
    """Returns the document of a stored value (index values, \\x02, JSON)."""
    raw = stored if isinstance(stored, bytes) else stored.encode()
    return orjson.loads(raw[raw.index(b"\x02") + 1 :])  # type: ignore[no-any-return]


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _item(park: Park) -> bytes:
    """Returns a parked event as a list item: its id, NUL, its CloudEvents JSON."""
    return park.envelope.id.encode() + b"\0" + event_text(park.envelope).encode()


def _event(item: bytes) -> Envelope:
    return event_of(item[item.index(b"\0") + 1 :])


def _index_bytes(value: Any) -> bytes:
    if type(value) is str:
        return orjson.dumps(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def index_value(value: Any) -> str:
    """Returns the canonical JSON an indexed field's value is stored and matched as."""
    return _index_bytes(value).decode()


def split_url(url: str) -> tuple[str, str]:
    """Returns the Redis URL without ``prefix`` and the key prefix (default ``bicameral``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "bicameral")
    if not prefix or any(c in prefix for c in " {}*?[]"):
        raise ConfigurationError(f"invalid redis key prefix {prefix!r}")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisReadStore:
    """Query-side documents of one or more services in Redis, under one key prefix."""

    def __init__(self, url: str) -> None:
        self.url, self.prefix = split_url(url)
        self._redis: aioredis.Redis | None = None
        self._lane: Lane | None = None
        self._fields: dict[str, list[str]] = {}
        self._commits = Commits(redis_watcher(self.url, self.prefix), name=self.prefix)

    def commits(self) -> Commits:
        """Returns the notices of commits under this prefix, by any process (one subscription
        while someone listens: see ``bicameral.readstore.redis_commits``)."""
        return self._commits

    async def start(self) -> None:
        """Connects and checks the server answers (idempotent)."""
        if self._redis is not None:
            return
        client = aioredis.Redis.from_url(self.url)
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise BackendError(f"cannot reach redis at {self.url}: {exc}") from exc
        self._redis = client
        self._lane = Lane.for_url(self.url)
        self._commit = client.register_script(_with_lib("commit"))
        self._find = client.register_script(_script("find"))
        self._acquire = client.register_script(_script("acquire"))
        self._release = client.register_script(_script("release"))
        self._leases = client.register_script(_script("leases"))
        self._unpark = client.register_script(_with_lib("unpark"))
        self._fail = client.register_script(_with_lib("fail"))
        self._skip = client.register_script(_with_lib("skip"))

    async def close(self) -> None:
        """Stops watching commits and closes the connections."""
        await self._commits.stop()
        if self._lane is not None:
            self._lane.close()
            self._lane = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> aioredis.Redis:
        """Returns the connected client."""
        if self._redis is None:
            raise BackendError("read store is not started")
        return self._redis

    async def ping(self) -> None:
        """Returns once the server answered PING."""
        try:
            await self.redis.ping()
        except RedisError as exc:
            raise BackendError(f"read store unreachable: {exc}") from exc

    def _key(self, kind: str, collection: str) -> str:
        return f"{self.prefix}:{kind}:{checked_name(collection)}"

    def _index(self, collection: str, field: str) -> str:
        return f"{self._key('i', collection)}/{field}"

    async def _fields_of(self, collection: str, *, fresh: bool = False) -> list[str]:
        """Returns the collection's indexed fields; remembered once the collection is declared."""
        found = None if fresh else self._fields.get(collection)
        if found is None:
            raw = await self.redis.get(self._key("m", collection))
            if raw is None:
                self._fields.pop(collection, None)
                return []
            found = self._fields[collection] = list(orjson.loads(raw))
        return found

    @_translated
    async def declare(self, collection: str, indexes: Sequence[str] = ()) -> None:
        """Records the collection's indexed fields, indexing existing documents for new ones."""
        wanted = {checked_name(f) for f in indexes}
        meta, docs_key = self._key("m", collection), self._key("d", collection)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(meta, docs_key)
                    raw = await pipe.get(meta)
                    current: list[str] = list(orjson.loads(raw)) if raw else []
                    fields = sorted(wanted | set(current))
                    if raw is not None and fields == current:
                        break
                    docs = await pipe.hgetall(docs_key)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._reindex(pipe, collection, current, fields, docs)
                    pipe.set(meta, orjson.dumps(fields))
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self._fields[collection] = fields

    def _reindex(
        self,
        pipe: Any,
        collection: str,
        old: list[str],
        fields: list[str],
        docs: dict[Any, Any],
    ) -> None:
        if old:
            pipe.delete(*(self._index(collection, f) for f in old))
        members: dict[str, dict[bytes, float]] = {f: {} for f in fields}
        stored: dict[bytes, bytes] = {}
        for key, value in docs.items():
            name = key if isinstance(key, bytes) else key.encode()
            body = value[value.index(b"\x02") + 1 :]
            doc = orjson.loads(body)
            encs = [_index_bytes(doc[f]) if f in doc else b"" for f in fields]
            stored[name] = b"\x01".join(encs) + b"\x02" + body
            for f, enc in zip(fields, encs, strict=True):
                if enc:
                    members[f][enc + b"\x00" + name] = 0
        if stored:
            pipe.hset(self._key("d", collection), mapping=stored)
        for f, found in members.items():
            if found:
                pipe.zadd(self._index(collection, f), found)

    async def _call(self, *args: str) -> Any:
        """Returns the reply to a read: on the pipelined lane when the URL allows one (see
        ``bicameral.drivers.redis``), else through redis-py."""
        if self._lane is not None:
            return await self._lane.call(*args)
        if self._redis is None:
            raise BackendError("read store is not started")
        return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]

    @_translated
    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Returns one document, or None."""
        raw = await self._call("HGET", self._key("d", collection), key)
        return _document(raw) if raw is not None else None

    @_translated
    async def get_many(self, collection: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Returns the documents found among ``keys``, in one HMGET."""
        keys = list(keys)
        if not keys:
            return {}
        raws = await self._call("HMGET", self._key("d", collection), *keys)
        return {k: _document(raw) for k, raw in zip(keys, raws, strict=True) if raw is not None}

    @_translated
    async def find(
        self, collection: str, field: str, value: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Returns ``(key, document)`` pairs whose ``field`` equals ``value``, by key.

        Uses the field's index when declared; scans the collection otherwise.
        """
        if field not in await self._fields_of(collection):
            return [(k, d) for k, d in await self.all(collection) if d.get(field) == value]
        head = index_value(value) + "\x00"
        keys, docs = await self._find(
            keys=[self._index(collection, field), self._key("d", collection)],
            args=["[" + head, "(" + index_value(value) + "\x01", len(head.encode())],
        )
        return [
            (k.decode(), _document(d)) for k, d in zip(keys, docs, strict=True) if d is not None
        ]

    @_translated
    async def all(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """Returns every ``(key, document)`` pair of a collection, by key."""
        raw = await self.redis.hgetall(self._key("d", collection))
        return sorted((_text(k), _document(v)) for k, v in raw.items())

    @_translated
    async def commit(
        self,
        checkpoint: str,
        expected: int,
        position: int,
        changes: Changes,
        parked: Sequence[Park] = (),
    ) -> bool:
        """Writes ``changes`` and ``parked`` and moves the checkpoint in one script, if at
        ``expected``."""
        parks: list[Any] = [self.prefix, len(parked)]
        for park in parked:
            header = orjson.dumps(park.header()).decode() if park.failure is not None else ""
            parks += [park.consumer, park.key, park.sequence, header, _item(park)]
        done = await self._documents(self._commit, [checkpoint, expected, position], changes, parks)
        return bool(done)

    async def _documents(
        self, script: Any, head: list[Any], changes: Changes, tail: Sequence[Any] = ()
    ) -> int:
        """Runs ``script`` with ``head``, the groups of ``changes``, then ``tail`` as arguments;
        re-reads the indexed fields when they changed meanwhile."""
        by_collection: dict[str, tuple[list[tuple[str, dict[str, Any]]], list[str]]] = {}
        for (collection, key), doc in changes.items():
            puts, dels = by_collection.setdefault(collection, ([], []))
            if doc is None:
                dels.append(key)
            else:
                puts.append((key, doc))
        fresh = False
        for _ in range(3):
            keys: list[str] = [f"{self.prefix}:checkpoints"]
            args: list[Any] = [*head, len(by_collection)]
            for collection, (puts, dels) in by_collection.items():
                fields = await self._fields_of(collection, fresh=fresh)
                self._group(collection, fields, puts, dels, keys, args)
            done = int(await script(keys=keys, args=[*args, *tail]))
            if done != _STALE_FIELDS:
                return done
            fresh = True
        raise BackendError(f"indexed fields keep changing under a write of {head[0]}")

    def _group(
        self,
        collection: str,
        fields: list[str],
        puts: list[tuple[str, dict[str, Any]]],
        dels: list[str],
        keys: list[str],
        args: list[Any],
    ) -> None:
        keys += [self._key("m", collection), self._key("d", collection)]
        keys += [self._index(collection, f) for f in fields]
        args += [
            orjson.dumps(fields),
            len(fields),
            len(puts),
            len(dels),
            _framed(puts, fields, dels),
        ]

    @_translated
    async def checkpoint(self, checkpoint: str) -> int:
        """Returns a checkpoint's position (0 if never committed)."""
        raw = await self._call("HGET", f"{self.prefix}:checkpoints", checkpoint)
        return int(raw) if raw is not None else 0

    @_translated
    async def checkpoints(self) -> dict[str, int]:
        """Returns every checkpoint by name."""
        raw = await self._call("HGETALL", f"{self.prefix}:checkpoints")
        if isinstance(raw, dict):  # redis-py pairs them up
            return {_text(k): int(v) for k, v in raw.items()}
        names, positions = raw[::2], raw[1::2]  # the lane's reply: name, position, ...
        return {name.decode(): int(at) for name, at in zip(names, positions, strict=True)}

    @_translated
    async def drop(self, collections: Sequence[str], checkpoints: Sequence[str]) -> None:
        """Deletes collections (documents and indexes) and checkpoints."""
        doomed: list[str] = []
        for collection in collections:
            fields = await self._fields_of(collection, fresh=True)
            doomed += [self._key(kind, collection) for kind in "md"]
            doomed += [self._index(collection, f) for f in fields]
            self._fields.pop(collection, None)
        async with self.redis.pipeline(transaction=True) as pipe:
            if doomed:
                pipe.delete(*doomed)
            if checkpoints:
                pipe.hdel(f"{self.prefix}:checkpoints", *checkpoints)
            await pipe.execute()

    def _dlq(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}:dlq:{kind}:{name}" if name else f"{self.prefix}:dlq:{kind}"

    @_translated
    async def parked_keys(self, consumer: str) -> set[str]:
        """Returns the keys of ``consumer`` with an open parked sequence."""
        return {_text(k) for k in await self.redis.hkeys(self._dlq("open", consumer))}

    async def _sequences(self, ids: Sequence[str]) -> list[ParkedSequence]:
        async with self.redis.pipeline(transaction=True) as pipe:
            for sequence in ids:
                pipe.hgetall(self._dlq("seq", sequence))
                pipe.lrange(self._dlq("ev", sequence), 0, -1)
            got = await pipe.execute()
        found = []
        for raw, items in zip(got[::2], got[1::2], strict=True):
            if raw:
                header = {_text(k): _text(v) for k, v in raw.items()}
                found.append(ParkedSequence.of(header, [_event(i) for i in items]))
        return sorted(found, key=lambda s: (s.first_failed, s.id))

    @_translated
    async def parked(self) -> list[ParkedSequence]:
        """Returns every parked sequence, by first failure time."""
        ids = sorted(_text(i) for i in await self.redis.smembers(self._dlq("ids")))
        return await self._sequences(ids) if ids else []

    @_translated
    async def parked_sequence(self, sequence: str) -> ParkedSequence | None:
        """Returns one parked sequence, or None."""
        found = await self._sequences([sequence])
        return found[0] if found else None

    @_translated
    async def unpark(
        self, sequence: str, event_id: str, changes: Changes, failure: Failure | None = None
    ) -> bool:
        """Settles the first event of a sequence, if it is ``event_id``, in one script."""
        if failure is not None:
            done = await self._fail(
                keys=[self._dlq("seq", sequence)],
                args=[
                    self.prefix,
                    sequence,
                    event_id,
                    failure.attempts,
                    failure.error,
                    failure.message,
                    failure.traceback,
                    failure.at.isoformat(),
                ],
            )
            return bool(done)
        return bool(await self._documents(self._unpark, [self.prefix, sequence, event_id], changes))

    @_translated
    async def skip(self, sequence: str, reason: str, by: str) -> Skipped | None:
        """Removes a parked sequence and records the skip, in one script."""
        for _ in range(100):
            found = await self.parked_sequence(sequence)
            if found is None:
                return None
            record = Skipped.of(found, reason, by, datetime.now(UTC))
            done = await self._skip(
                keys=[self._dlq("seq", sequence)],
                args=[
                    self.prefix,
                    sequence,
                    len(found.events),
                    found.events[0].id,
                    orjson.dumps(record.to_dict()),
                ],
            )
            if done:
                return record
        raise BackendError(f"parked sequence {sequence} keeps growing; skip it again")

    @_translated
    async def skipped(self) -> list[Skipped]:
        """Returns the skip records, oldest first."""
        raws = await self.redis.lrange(self._dlq("skipped"), 0, -1)
        return [Skipped.from_dict(orjson.loads(raw)) for raw in raws]

    @_translated
    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Takes or renews a lease unless another owner holds it unexpired."""
        got = await self._acquire(
            keys=[f"{self.prefix}:lease:{name}", f"{self.prefix}:leases"],
            args=[owner, max(1, int(ttl * 1000)), name],
        )
        return bool(got)

    @_translated
    async def release_lease(self, name: str, owner: str) -> None:
        """Gives up a lease held by ``owner``."""
        await self._release(keys=[f"{self.prefix}:lease:{name}"], args=[owner])

    @_translated
    async def leases(self, prefix: str) -> dict[str, str]:
        """Returns unexpired leases under ``prefix``."""
        found = await self._leases(
            keys=[f"{self.prefix}:leases"], args=[f"{self.prefix}:lease:", prefix]
        )
        return {found[i].decode(): found[i + 1].decode() for i in range(0, len(found), 2)}
