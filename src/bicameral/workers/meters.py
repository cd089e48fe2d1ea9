"""Meters: where each consumer (projection partition, relay, reaction runner) stands.

Workers report as they go: the position they start a step from (``at``), the events they
fetched (the first is the oldest not yet handled, ``fetched``), the position they committed
(``handled``) and their failures (``failed``). The head of each consumer's source is read only
when ``/metrics`` is scraped (``ConsumerMeters.refresh``), never on a worker's path.

A process exports the gauges only of the consumers it works on now: a standby copy of a relay,
or a projector that gave a partition up, drops their series, so each consumer has one set of
gauges, from the process that owns it. Labels are ``service`` (the service the consumer
belongs to), ``consumer`` (named as ``bicameral status`` names it: ``products.v1:inventory``,
``relay``, ``reactions:orders``) and ``partition`` (a projection's partition number; empty for
relays and reaction runners); never stream ids, so their number is bounded by the deployment.

- ``bicameral_consumer_position``: the last position handled;
- ``bicameral_consumer_lag_events``: events of the source above it, as of the last scrape;
- ``bicameral_consumer_lag_seconds``: the age of the oldest event not yet handled (0 when
  caught up); a consumer that stopped moving has a lag that keeps growing. When the worker
  has not fetched that event yet, the age counts from the scrape that first saw the head ahead;
- ``bicameral_consumer_parked_events``: events parked, waiting for a retry or a skip;
- ``bicameral_consumer_errors_total{kind}``: failed steps, ``transient`` (a backend away, a
  conflict: retried) or ``poison`` (the handler or the decoding raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric

from bicameral.envelope import Envelope
from bicameral.parking import ParkedSequence
from bicameral.workers.retry import TRANSIENT

__all__ = ["CONSUMERS", "ConsumerMeters", "Head", "Meter", "Parked", "error_kind"]

log = logging.getLogger("bicameral.workers.meters")

Head = Callable[[], Awaitable[int]]
"""Returns the head (last position) of a consumer's source."""
Parked = Callable[[], Awaitable[Sequence[ParkedSequence]]]
"""Returns the parked sequences of a read store (of every consumer it keeps)."""

KINDS = ("transient", "poison")
LABELS = ("service", "consumer", "partition")


def error_kind(exc: BaseException) -> str:
    """Returns ``transient`` for failures that may pass by themselves
    (``bicameral.workers.retry.TRANSIENT``: a backend away, a lost connection, a conflict),
    ``poison`` for the others (a handler, the decoding or the read store raised)."""
    return "transient" if isinstance(exc, TRANSIENT) else "poison"


@dataclass(eq=False)
class Meter:
    """Where one consumer stands, as its worker reports it."""

    service: str
    consumer: str
    partition: str = ""
    head_of: Head | None = None
    parked_of: Parked | None = None
    """Reads the parked sequences where this consumer parks; ``parks`` picks its own."""
    parks: Callable[[ParkedSequence], bool] | None = None
    position: int = 0
    head: int = 0
    pending_since: float | None = None
    """Unix time of the oldest event not yet handled, when known."""
    parked_events: int = 0
    active: bool = False
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    @property
    def labels(self) -> tuple[str, str, str]:
        """Returns the label values: service, consumer, partition."""
        return (self.service, self.consumer, self.partition)

    @property
    def lag_events(self) -> int:
        """Returns how many events of the source are above the position."""
        return max(0, self.head - self.position)

    def lag_seconds(self, now: float | None = None) -> float:
        """Returns the age of the oldest event not yet handled; 0 when there is none."""
        if self.pending_since is None or self.lag_events == 0:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.pending_since)

    def at(self, position: int) -> None:
        """Writes that the worker works on this consumer from ``position``."""
        self.active = True
        self.position = position
        self.head = max(self.head, position)

    def fetched(self, envelopes: Sequence[Envelope]) -> None:
        """Writes the events fetched above the position: the first is the oldest not handled."""
        if envelopes:
            self.pending_since = envelopes[0].time.timestamp()
            self.head = max(self.head, envelopes[-1].position)

    def handled(self, position: int) -> None:
        """Writes that every event up to ``position`` is handled."""
        self.position = position
        self.head = max(self.head, position)
        self.pending_since = None

    def failed(self, exc: BaseException) -> str:
        """Counts a failed step by its kind; returns the kind."""
        kind = error_kind(exc)
        self.errors[kind] += 1
        return kind

    def parked(self, count: int) -> None:
        """Writes how many events of this consumer are parked now (read at each scrape)."""
        self.parked_events = count

    def release(self) -> None:
        """Writes that this process no longer works on the consumer: its gauges go."""
        self.active = False
        self.pending_since = None

    def saw_head(self, head: int) -> None:
        """Writes the source's head as read now; starts the lag clock if it is ahead first."""
        self.head = max(self.head, head, self.position)
        if self.head > self.position and self.pending_since is None:
            self.pending_since = time.time()


class ConsumerMeters:
    """Every consumer meter of this process; a Prometheus collector of their metrics."""

    def __init__(self) -> None:
        self._meters: dict[tuple[str, str, str], Meter] = {}

    def meter(
        self,
        service: str,
        consumer: str,
        partition: str = "",
        head: Head | None = None,
        parked: tuple[Parked, Callable[[ParkedSequence], bool]] | None = None,
    ) -> Meter:
        """Returns the meter of one consumer, made on first use; ``head`` reads its source's,
        ``parked`` the parked sequences of its read store and which of them are its own."""
        key = (service, consumer, partition)
        found = self._meters.get(key)
        if found is None:
            found = self._meters[key] = Meter(service, consumer, partition)
        if head is not None:
            found.head_of = head
        if parked is not None:
            found.parked_of, found.parks = parked
        return found

    def meters(self) -> list[Meter]:
        """Returns every meter, active or not."""
        return list(self._meters.values())

    def forget(self) -> None:
        """Drops every meter (for tests)."""
        self._meters.clear()

    async def refresh(self, timeout: float = 2.0) -> None:
        """Reads the source heads and the parked events of the active consumers (each source
        and each read store once), each within ``timeout`` seconds.

        A head or a count that cannot be read (a backend away) keeps its last value: the lag in
        seconds still grows while the position stands.
        """
        active = [m for m in self._meters.values() if m.active]
        heads = [(m, m.head_of) for m in active if m.head_of]
        parked = [(m, m.parked_of, m.parks) for m in active if m.parked_of and m.parks]
        readers: list[Callable[[], Awaitable[object]]] = list(
            dict.fromkeys([*(read for _, read in heads), *(read for _, read, _ in parked)])
        )
        results = await asyncio.gather(
            *(asyncio.wait_for(read(), timeout) for read in readers), return_exceptions=True
        )
        found = dict(zip(readers, results, strict=True))
        for meter, read in heads:
            head = found[read]
            if isinstance(head, int):
                meter.saw_head(head)
            else:
                log.debug("head of %s unread: %s", meter.labels, head)
        for meter, reader, mine in parked:
            sequences = found[reader]
            if isinstance(sequences, BaseException):
                log.debug("parked events of %s unread: %s", meter.labels, sequences)
                continue
            assert isinstance(sequences, Sequence)
            meter.parked(sum(len(s.events) for s in sequences if mine(s)))

    def describe(self) -> Iterable[Metric]:
        """Returns the metric families, empty, for the registry to check their names."""
        return [*_gauges().values(), _errors()]

    def collect(self) -> Iterable[Metric]:
        """Returns the metric families: errors of every consumer, gauges of the active ones."""
        gauges, errors = _gauges(), _errors()
        now = time.time()
        for meter in self._meters.values():
            for kind in KINDS:
                errors.add_metric([*meter.labels, kind], meter.errors[kind])
            if meter.active:
                values = {
                    "position": meter.position,
                    "lag_events": meter.lag_events,
                    "lag_seconds": meter.lag_seconds(now),
                    "parked_events": meter.parked_events,
                }
                for name, value in values.items():
                    gauges[name].add_metric(meter.labels, value)
        return [*gauges.values(), errors]


def _gauges() -> dict[str, GaugeMetricFamily]:
    helps = {
        "position": "Last position a consumer handled",
        "lag_events": "Events of a consumer's source not yet handled",
        "lag_seconds": "Age of the oldest event a consumer has not yet handled",
        "parked_events": "Events a consumer parked, waiting for a retry or a skip",
    }
    return {
        name: GaugeMetricFamily(f"bicameral_consumer_{name}", text, labels=LABELS)
        for name, text in helps.items()
    }


def _errors() -> CounterMetricFamily:
    return CounterMetricFamily(
        "bicameral_consumer_errors",
        "Failed steps of a consumer, by kind (transient or poison)",
        labels=[*LABELS, "kind"],
    )


CONSUMERS = ConsumerMeters()
"""The consumer meters of this process, exported at ``/metrics``."""
with contextlib.suppress(ValueError):  # already registered (module reloaded)
    REGISTRY.register(CONSUMERS)
