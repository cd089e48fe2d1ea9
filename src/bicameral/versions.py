"""Read-model versions: each projection's stored versions, building, live or retired.

A projection's documents and checkpoints are stored per version number (collections
``<name>_v<n>_<collection>``, checkpoints ``<name>.v<n>:<source>``). What each version is doing
is kept durably beside those checkpoints, as markers in the read store's checkpoint table, each
changed only by compare-and-set (``ReadStore.commit``), the locking that protects checkpoints::

    <name>#live             the version queries read (absent: none yet)
    <name>.v<n>#code        the code version (``Projection(version=)``) that version n folds
    <name>.v<n>#state       1 building, 2 live, 3 retired, 4 failed
    <name>.v<n>#started     when version n started building (unix seconds)
    <name>.v<n>#failed      1 + the position a failed build had folded up to
    <name>.v<n>#switched    when version n went live (unix seconds)
    <name>.v<n>#dropold     1: drop the version n replaces once it has been retired a while

The ``#live`` pointer is the truth about which version is live: the switch is one
compare-and-set of it, made only once the building version has passed the head of every
source it reads, as read after its checkpoints, and holds no parked event (a poison event parks
in a build as anywhere: ``bicameral dlq``). The states follow the pointer.

A version is built by the code whose ``Projection(version=)`` it names. A node whose code
declares a version the store has never seen starts it building beside the live one
(``deploy``); ``bicameral projections rebuild`` starts the current code's version again under a
new number (``start_rebuild``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum

from bicameral.errors import BackendError, ConfigurationError
from bicameral.ports import ReadStore
from bicameral.projection import Projection, partition_checkpoints

__all__ = [
    "Catalog",
    "LiveVersions",
    "Progress",
    "State",
    "Version",
    "deploy",
    "drop_old",
    "drop_replaced",
    "drop_retired",
    "fail",
    "progress",
    "read_catalog",
    "start_rebuild",
    "try_switch",
]

log = logging.getLogger("bicameral.versions")

_MARKER = re.compile(
    r"^(?P<name>.+)\.v(?P<number>\d+)#(?P<kind>code|state|started|failed|switched|dropold)$"
)
_DATA = re.compile(r"^(?P<name>.+)\.v(?P<number>\d+):(?P<source>[^#]+)")
_ATTEMPTS = 10


class State(IntEnum):
    """What a stored version of a read model is doing."""

    BUILDING = 1
    LIVE = 2
    RETIRED = 3
    FAILED = 4


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of a projection."""

    name: str
    number: int
    code: int
    state: State
    started: int = 0
    failed_at: int = 0
    """The position a failed build had folded up to (the next event failed)."""
    switched: int = 0
    """When it went live (unix seconds), 0 if it never did."""
    drop_old: bool = False
    """Whether the version it replaces is dropped once retired a while (``--drop-old``)."""

    @property
    def label(self) -> str:
        """Returns the state's name in lower case (``building``)."""
        return self.state.name.lower()


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a version is: events folded, events in its sources, rate and time left."""

    done: int
    total: int
    rate: float
    """Events per second since it started building (0 when unknown)."""

    @property
    def fraction(self) -> float:
        """Returns the share done, from 0 to 1."""
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)

    @property
    def eta(self) -> float | None:
        """Returns the seconds left at the current rate, or None when unknown."""
        if self.done >= self.total:
            return 0.0
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class Catalog:
    """A snapshot of a read store's checkpoints: every projection's versions and positions."""

    def __init__(self, checkpoints: Mapping[str, int]) -> None:
        self.checkpoints = dict(checkpoints)
        self._live: dict[str, int] = {}
        self._marks: dict[tuple[str, int], dict[str, int]] = {}
        self._data: dict[str, set[int]] = {}
        self._sources: dict[tuple[str, int], set[str]] = {}
        for key, value in self.checkpoints.items():
            if key.endswith("#live"):
                self._live[key[: -len("#live")]] = value
            elif found := _MARKER.match(key):
                at = (found["name"], int(found["number"]))
                self._marks.setdefault(at, {})[found["kind"]] = value
            elif found := _DATA.match(key):
                number = int(found["number"])
                self._data.setdefault(found["name"], set()).add(number)
                self._sources.setdefault((found["name"], number), set()).add(found["source"])

    def live(self, name: str) -> int:
        """Returns the live version of projection ``name`` (0 when none is)."""
        return self._live.get(name, 0)

    def version(self, name: str, number: int) -> Version | None:
        """Returns version ``number`` of ``name``, or None when the store holds no such version."""
        marks = self._marks.get((name, number))
        if marks is None or "code" not in marks:
            return None
        state = State(marks.get("state", State.BUILDING))
        if self.live(name) == number:
            state = State.LIVE
        elif state == State.LIVE:
            state = State.RETIRED  # the pointer moved on before the state was written
        failed = max(0, marks.get("failed", 0) - 1)
        return Version(
            name,
            number,
            marks["code"],
            state,
            marks.get("started", 0),
            failed,
            marks.get("switched", 0),
            bool(marks.get("dropold", 0)),
        )

    def versions(self, name: str) -> list[Version]:
        """Returns every version of ``name`` the store holds, by number."""
        numbers = sorted(n for (found, n) in self._marks if found == name)
        return [v for n in numbers if (v := self.version(name, n)) is not None]

    def building(self, name: str) -> list[Version]:
        """Returns the versions of ``name`` being built, by number."""
        return [v for v in self.versions(name) if v.state == State.BUILDING]

    def numbers(self, name: str) -> set[int]:
        """Returns every version number of ``name`` with markers or checkpoints."""
        return {n for (found, n) in self._marks if found == name} | self._data.get(name, set())

    def unmarked(self, name: str) -> int:
        """Returns the highest version of ``name`` with checkpoints but no markers (0: none).

        Stores written before versions had states hold only checkpoints; that version is live.
        """
        plain = self._data.get(name, set()) - {n for (found, n) in self._marks if found == name}
        return max(plain, default=0)

    def sources(self, name: str, number: int) -> set[str]:
        """Returns the sources version ``number`` of ``name`` has checkpoints for."""
        return set(self._sources.get((name, number), set()))

    def position(self, projection: Projection, number: int, source: str, partitions: int) -> int:
        """Returns the position every partition of a version has passed in ``source``."""
        names = partition_checkpoints(projection.checkpoint(source, number), partitions)
        return min(self.checkpoints.get(n, 0) for n in names)

    def done(self, projection: Projection, number: int, source: str, partitions: int) -> int:
        """Returns how many of ``source``'s events a version's partitions folded, on average."""
        names = partition_checkpoints(projection.checkpoint(source, number), partitions)
        return sum(self.checkpoints.get(n, 0) for n in names) // len(names)


async def read_catalog(store: ReadStore) -> Catalog:
    """Returns the catalog of ``store`` now (one read of its checkpoints)."""
    return Catalog(await store.checkpoints())


async def _mark(store: ReadStore, name: str, number: int, kind: str, value: int) -> bool:
    """Writes a marker that did not exist; returns False when it did."""
    return await store.commit(f"{name}.v{number}#{kind}", 0, value, {})


async def _move(store: ReadStore, name: str, number: int, old: State, new: State) -> bool:
    return await store.commit(f"{name}.v{number}#state", int(old), int(new), {})


async def _create(store: ReadStore, catalog: Catalog, projection: Projection, state: State) -> int:
    """Creates the next version of ``projection`` in ``state``; returns its number (0 on a race).

    The number is the code version when free, so a deploy of ``version=2`` stores ``_v2_``.
    """
    name, code = projection.name, projection.code_version
    number = max(code, max(catalog.numbers(name), default=0) + 1)
    if not await _mark(store, name, number, "code", code):
        return 0
    await _mark(store, name, number, "started", int(time.time()))
    await _mark(store, name, number, "state", int(state))
    return number


async def deploy(store: ReadStore, projection: Projection) -> Catalog:
    """Makes the store know the code's version of ``projection``; returns the catalog after.

    With nothing stored yet, the code's version is live at once (nothing else could serve).
    With a live version of older code, the code's version starts building beside it, unless
    it already did (a failed build waits for ``bicameral projections rebuild``).
    """
    name, code = projection.name, projection.code_version
    for _ in range(_ATTEMPTS):
        catalog = await read_catalog(store)
        live = catalog.live(name)
        if live == 0:
            number = catalog.unmarked(name) or code
            await _mark(store, name, number, "code", number)
            await _mark(store, name, number, "state", int(State.LIVE))
            await store.commit(f"{name}#live", 0, number, {})
            continue
        current = catalog.version(name, live)
        if current is None:
            await _mark(store, name, live, "code", live)
            continue
        if current.code > code:
            log.warning(
                "%s: the live version %d was built by newer code (version=%d); this code "
                "(version=%d) neither folds nor replaces it",
                name,
                live,
                current.code,
                code,
            )
            return catalog
        ours = [v for v in catalog.versions(name) if v.code == code]
        if current.code == code or any(v.state != State.RETIRED for v in ours):
            for failed in (v for v in ours if v.state == State.FAILED):
                log.warning(
                    "%s: the build of version %d failed after position %d; fix the projection "
                    "and run: bicameral projections rebuild %s",
                    name,
                    failed.number,
                    failed.failed_at,
                    name,
                )
            return catalog
        number = await _create(store, catalog, projection, State.BUILDING)
        if number:
            log.info("%s: building version %d beside the live version %d", name, number, live)
    raise BackendError(f"the versions of read model {name} keep changing; try again")


async def start_rebuild(store: ReadStore, projection: Projection) -> tuple[Version, bool]:
    """Starts building the code's projection as a new version, or finds the build under way.

    Returns the building version and True when this call started it.
    """
    name = projection.name
    for _ in range(_ATTEMPTS):
        catalog = await deploy(store, projection)
        building = [v for v in catalog.building(name) if v.code == projection.code_version]
        if building:
            return building[-1], False
        live = catalog.version(name, catalog.live(name))
        if live is not None and live.code > projection.code_version:
            raise ConfigurationError(
                f"the live version of {name} was built by newer code (version={live.code}); "
                f"this code declares version={projection.code_version}"
            )
        number = await _create(store, catalog, projection, State.BUILDING)
        if number:
            found = (await read_catalog(store)).version(name, number)
            if found is not None:
                return found, True
    raise BackendError(f"the versions of read model {name} keep changing; try again")


async def try_switch(
    store: ReadStore,
    projection: Projection,
    number: int,
    sources: Iterable[str],
    head: Callable[[str], Awaitable[int]],
    partitions: int,
) -> bool:
    """Makes building version ``number`` live once it has passed the head of every source,
    with no event of it parked.

    The heads are read after the checkpoints, so the live version cannot be ahead of them;
    the switch is a compare-and-set of the ``#live`` pointer. Returns True when it switched.
    """
    name = projection.name
    catalog = await read_catalog(store)
    version = catalog.version(name, number)
    if version is None or version.state != State.BUILDING:
        return False
    for source in sources:
        if catalog.position(projection, number, source, partitions) < await head(source):
            return False
        if await store.parked_keys(projection.checkpoint(source, number)):
            return False  # parked events are unprocessed: retried or skipped first
    live = catalog.live(name)
    current = catalog.version(name, live)
    if current is not None and current.code > version.code:
        return False
    if not await store.commit(f"{name}#live", live, number, {}):
        return False
    await _mark(store, name, number, "switched", int(time.time()))
    await _move(store, name, number, State.BUILDING, State.LIVE)
    if current is not None:
        await _move(store, name, live, State.LIVE, State.RETIRED)
    log.info("%s: version %d is live (it replaces version %d)", name, number, live)
    return True


async def fail(store: ReadStore, name: str, number: int, position: int) -> None:
    """Marks building version ``number`` failed after ``position``: nothing builds it any more."""
    await _mark(store, name, number, "failed", position + 1)
    await _move(store, name, number, State.BUILDING, State.FAILED)


async def drop_retired(store: ReadStore, projection: Projection) -> list[int]:
    """Drops every retired or failed version of ``projection``; returns their numbers.

    The collections dropped are those the code declares, under each retired version's number.
    """
    name = projection.name
    catalog = await read_catalog(store)
    doomed = [v.number for v in catalog.versions(name) if v.state in (State.RETIRED, State.FAILED)]
    for number in doomed:
        prefixes = (f"{name}.v{number}:", f"{name}.v{number}#")
        checkpoints = [c for c in catalog.checkpoints if c.startswith(prefixes)]
        tables = [projection.table(c, number) for c in projection.collections]
        await store.drop(tables, checkpoints)
    return doomed


async def drop_old(store: ReadStore, name: str, number: int) -> None:
    """Asks for the version ``number`` replaces to be dropped once retired a while."""
    await _mark(store, name, number, "dropold", 1)


async def drop_replaced(
    store: ReadStore, projection: Projection, catalog: Catalog, grace: float
) -> list[int]:
    """Drops the retired versions of ``projection`` when its live version asked for it
    (``drop_old``) and went live more than ``grace`` seconds ago; returns their numbers.

    The grace lets every query process move to the live version before the old one goes.
    """
    live = catalog.version(projection.name, catalog.live(projection.name))
    if live is None or not live.drop_old or not live.switched:
        return []
    if time.time() - live.switched < grace:
        return []
    retired = [v for v in catalog.versions(projection.name) if v.state == State.RETIRED]
    if not retired:
        return []
    dropped = await drop_retired(store, projection)
    log.info("%s: dropped the retired version(s) %s", projection.name, dropped)
    return dropped


def _retrieved(done: asyncio.Future[Catalog]) -> None:
    """Marks a failed read's error seen (each waiter got it; none may be left to take it)."""
    if not done.cancelled():
        done.exception()


def progress(
    catalog: Catalog,
    projection: Projection,
    version: Version,
    heads: Mapping[str, int],
    partitions: int,
    now: float | None = None,
) -> Progress:
    """Returns how far ``version`` is through the given heads of its sources."""
    done = sum(catalog.done(projection, version.number, s, partitions) for s in heads)
    total = sum(heads.values())
    elapsed = (time.time() if now is None else now) - version.started
    rate = done / elapsed if version.started and elapsed > 0 else 0.0
    return Progress(min(done, total), total, rate)


class LiveVersions:
    """Which stored version of each projection this process's queries read.

    It reads the catalog at most every ``ttl`` seconds. When the live pointer moves, queries go
    on reading the version they read until the new one has passed it in every source, so a
    query never misses a document an earlier query of this process saw.
    """

    def __init__(
        self,
        store: ReadStore,
        partitions: int = 1,
        *,
        ttl: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.partitions = partitions
        self.ttl = ttl
        self._clock = clock
        self._catalog: Catalog | None = None
        self._read_at = -float("inf")
        self._serving: dict[str, int] = {}
        self._reading: asyncio.Future[Catalog] | None = None

    async def catalog(self) -> Catalog:
        """Returns the catalog, read again when older than ``ttl``: by one read at a time,
        which every query that finds it stale meanwhile waits for (32 queries in flight made
        32 reads of every checkpoint each time it went stale)."""
        if self._catalog is not None and self._clock() - self._read_at <= self.ttl:
            return self._catalog
        reading = self._reading
        if reading is None:
            reading = self._reading = asyncio.ensure_future(self._read())
            reading.add_done_callback(_retrieved)
        return await asyncio.shield(reading)

    async def _read(self) -> Catalog:
        try:
            catalog = await read_catalog(self.store)
            self._catalog, self._read_at = catalog, self._clock()
            return catalog
        finally:
            self._reading = None

    async def version(self, projection: Projection) -> int:
        """Returns the stored version of ``projection`` queries read now."""
        catalog = await self.catalog()
        name = projection.name
        pointer = catalog.live(name) or projection.version
        serving = self._serving.get(name)
        if serving is None or serving == pointer:
            self._serving[name] = pointer
            return pointer
        if serving in catalog.numbers(name) and any(
            catalog.position(projection, pointer, source, self.partitions)
            < catalog.position(projection, serving, source, self.partitions)
            for source in catalog.sources(name, serving)
        ):
            return serving
        self._serving[name] = pointer
        return pointer

    async def position(self, projection: Projection, source: str) -> int:
        """Returns the position in ``source`` the version queries read has passed (read now)."""
        number = await self.version(projection)
        names = partition_checkpoints(projection.checkpoint(source, number), self.partitions)
        if len(names) == 1:
            return await self.store.checkpoint(names[0])
        found = await self.store.checkpoints()
        return min(found.get(n, 0) for n in names)
