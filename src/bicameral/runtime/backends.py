"""Backends chosen by URL: ``memory://``, ``sqlite:///path``, ``postgresql://``, ``redis://``,
``nats://``. Adapter modules are imported only when their scheme is used, so a process never
loads a driver it does not need.

An event store's database (a SQLite file, a PostgreSQL database) is created only when its URL
says ``?create_database=true``: without it a missing one stops the start with a
ConfigurationError naming it, so a mistyped production URL never starts an empty store. The
embedded defaults (``bicameral up`` without settings) say it.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bicameral.errors import ConfigurationError
from bicameral.ports import EventStore, ReadStore, Transport

__all__ = ["BackendFactory", "creates_database", "sqlite_path"]

_EVENT_STORES = {
    "memory": "bicameral.eventstore.memory:MemoryEventStore",
    "sqlite": "bicameral.eventstore.sqlite:SqliteEventStore",
    "postgresql": "bicameral.eventstore.postgres:PostgresEventStore",
    "postgres": "bicameral.eventstore.postgres:PostgresEventStore",
}
_READ_STORES = {
    "memory": "bicameral.readstore.memory:MemoryReadStore",
    "sqlite": "bicameral.readstore.sqlite:SqliteReadStore",
    "postgresql": "bicameral.readstore.postgres:PostgresReadStore",
    "postgres": "bicameral.readstore.postgres:PostgresReadStore",
    "redis": "bicameral.readstore.redis:RedisReadStore",
}
_TRANSPORTS = {
    "memory": "bicameral.transport.memory:MemoryTransport",
    "sqlite": "bicameral.transport.sqlite:SqliteTransport",
    "nats": "bicameral.transport.nats:NatsTransport",
}


def sqlite_path(url: str) -> str:
    """Returns the file path of ``sqlite:///relative`` or ``sqlite:////absolute``."""
    path = urlsplit(url).path
    if not path or path == "/":
        raise ConfigurationError(f"{url!r} names no file")
    return path[1:]


def creates_database(url: str) -> bool:
    """Returns True when ``url`` says ``create_database=true`` (ConfigurationError for a value
    other than true or false)."""
    value = dict(parse_qsl(urlsplit(url).query)).get("create_database", "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigurationError(f"create_database must be true or false in {url!r}")
    return value in ("true", "1", "yes")


def _load(table: dict[str, str], url: str, kind: str) -> tuple[str, Any]:
    scheme = urlsplit(url).scheme
    target = table.get(scheme)
    if target is None:
        raise ConfigurationError(
            f"no {kind} for {url!r}; known schemes: {', '.join(sorted(table))}"
        )
    module, _, name = target.partition(":")
    try:
        return scheme, getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ConfigurationError(
            f"the {scheme} {kind} needs an extra: pip install 'bicameral[{scheme}]' ({exc})"
        ) from None


class BackendFactory:
    """Makes backends from URLs, one instance per URL in a process (memory stays shared)."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str], Any] = {}

    def _once(self, kind: str, key: str, make: Any) -> Any:
        found = self._made.get((kind, key))
        if found is None:
            found = self._made[(kind, key)] = make()
        return found

    def event_store(self, service: str, url: str) -> EventStore:
        """Returns the event store of ``service`` at ``url``."""
        scheme, cls = _load(_EVENT_STORES, url, "event store")
        if scheme == "memory":
            return self._once("events", f"{url}#{service}", lambda: cls(service))  # type: ignore[no-any-return]
        if scheme == "sqlite":
            create = creates_database(url)
            return self._once(  # type: ignore[no-any-return]
                "events", url, lambda: cls(service, sqlite_path(url), create=create)
            )
        return self._once("events", url, lambda: cls(service, url))  # type: ignore[no-any-return]

    def read_store(self, url: str) -> ReadStore:
        """Returns the read store at ``url``."""
        scheme, cls = _load(_READ_STORES, url, "read store")
        if scheme == "memory":
            return self._once("reads", url, cls)  # type: ignore[no-any-return]
        if scheme == "sqlite":
            return self._once("reads", url, lambda: cls(sqlite_path(url)))  # type: ignore[no-any-return]
        return self._once("reads", url, lambda: cls(url))  # type: ignore[no-any-return]

    def transport(self, url: str) -> Transport:
        """Returns the transport at ``url``."""
        scheme, cls = _load(_TRANSPORTS, url, "transport")
        if scheme == "memory":
            return self._once("transport", url, cls)  # type: ignore[no-any-return]
        if scheme == "sqlite":
            return self._once("transport", url, lambda: cls(sqlite_path(url)))  # type: ignore[no-any-return]
        return self._once("transport", url, lambda: cls(url))  # type: ignore[no-any-return]

    def started(self) -> list[Any]:
        """Returns every backend made so far."""
        return list(self._made.values())
