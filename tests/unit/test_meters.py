"""Consumer meters: position, lag in events and seconds, errors by kind, only while at work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from bicameral.envelope import Envelope
from bicameral.errors import BackendError, BicameralError, ConcurrencyError
from bicameral.workers.meters import ConsumerMeters, Meter, error_kind

LABELS = {"service": "inventory", "consumer": "products.v1:inventory", "partition": "0"}


def envelope(position: int, age: float) -> Envelope:
    return Envelope(
        id=f"e{position}",
        type="t.v1",
        source="inventory",
        subject="s",
        time=datetime.now(UTC) - timedelta(seconds=age),
        stream_version=position,
        position=position,
        data={},
    )


def scrape(meters: ConsumerMeters) -> dict[str, float]:
    """Returns the samples of ``meters`` as a registry exports them: name{partition,kind}."""
    registry = CollectorRegistry()
    registry.register(meters)
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            extra = sample.labels.get("kind", "")
            found[f"{sample.name}{{{sample.labels['partition']}{extra}}}"] = sample.value
    return found


def test_error_kinds_split_backends_and_conflicts_from_everything_else() -> None:
    assert error_kind(BackendError("down")) == "transient"
    assert error_kind(ConcurrencyError("s-1", 1, 2)) == "transient"
    assert error_kind(ConnectionResetError()) == "transient"
    assert error_kind(ValueError("bad payload")) == "poison"
    assert error_kind(BicameralError("a handler refused")) == "poison"


def test_a_meter_follows_a_worker_through_a_batch() -> None:
    meter = Meter("inventory", "relay")
    meter.at(10)
    assert (meter.position, meter.lag_events, meter.lag_seconds()) == (10, 0, 0.0)
    meter.fetched([envelope(11, age=30.0), envelope(12, age=1.0)])
    assert meter.lag_events == 2
    assert 29.0 < meter.lag_seconds() < 60.0  # the oldest event not yet handled
    meter.handled(12)
    assert (meter.position, meter.lag_events, meter.lag_seconds()) == (12, 0, 0.0)


async def test_a_scrape_reads_each_head_once_and_starts_the_clock_when_it_sees_it_ahead() -> None:
    head, reads = 5, 0

    async def read_head() -> int:
        nonlocal reads
        reads += 1
        return head

    meters = ConsumerMeters()
    meter = meters.meter("inventory", "relay", head=read_head)
    other = meters.meter("inventory", "products.v1:inventory", "0", head=read_head)
    meter.at(5)
    other.at(5)
    await meters.refresh()
    assert reads == 1
    assert (meter.lag_events, meter.pending_since) == (0, None)
    head = 8
    await meters.refresh()
    assert meter.lag_events == 3
    assert meter.pending_since is not None
    assert meter.lag_seconds(now=meter.pending_since + 40) == 40


async def test_a_head_that_cannot_be_read_keeps_its_last_value() -> None:
    async def broken() -> int:
        raise BackendError("down")

    meters = ConsumerMeters()
    meter = meters.meter("inventory", "relay", head=broken)
    meter.at(3)
    meter.fetched([envelope(4, age=5.0)])
    await meters.refresh()
    assert meter.lag_events == 1
    assert meter.lag_seconds() >= 5.0


def test_only_active_consumers_export_gauges_and_every_one_exports_errors() -> None:
    meters = ConsumerMeters()
    working = meters.meter("inventory", "products.v1:inventory", "0")
    standby = meters.meter("inventory", "products.v1:inventory", "1")
    working.at(7)
    working.failed(BackendError("down"))
    standby.failed(ValueError("poison"))
    found = scrape(meters)
    assert found["bicameral_consumer_position{0}"] == 7
    assert found["bicameral_consumer_lag_events{0}"] == 0
    assert found["bicameral_consumer_lag_seconds{0}"] == 0
    assert found["bicameral_consumer_parked_events{0}"] == 0
    assert "bicameral_consumer_position{1}" not in found
    assert found["bicameral_consumer_errors_total{0transient}"] == 1
    assert found["bicameral_consumer_errors_total{1poison}"] == 1
    working.release()
    assert "bicameral_consumer_position{0}" not in scrape(meters)


def test_the_same_consumer_has_one_meter_per_process() -> None:
    meters = ConsumerMeters()
    first = meters.meter("inventory", "relay")
    assert meters.meter("inventory", "relay") is first
    assert meters.meter("orders", "relay") is not first


reports = st.lists(
    st.one_of(
        st.tuples(st.just("at"), st.integers(0, 50)),
        st.tuples(st.just("fetched"), st.integers(1, 5)),
        st.tuples(st.just("handled"), st.integers(0, 5)),
        st.tuples(st.just("release"), st.just(0)),
    ),
    max_size=30,
)


@given(reports)
def test_lag_is_never_negative_and_is_zero_once_everything_fetched_is_handled(
    steps: list[tuple[str, int]],
) -> None:
    meter = Meter("s", "c")
    for kind, n in steps:
        if kind == "at":
            meter.at(n)
        elif kind == "fetched":
            meter.fetched([envelope(meter.position + i, age=i) for i in range(1, n + 1)])
        elif kind == "handled":
            meter.handled(min(meter.head, meter.position + n))
        else:
            meter.release()
        assert meter.lag_events >= 0
        assert meter.lag_seconds() >= 0
    meter.handled(meter.head)
    assert (meter.lag_events, meter.lag_seconds()) == (0, 0.0)
