"""The benchmark harness's statistics: medians with min and max, ratios, percentiles."""

from __future__ import annotations

import pytest
from bench.stats import Summary, percentile, ratio, summarize, summarize_runs
from hypothesis import given
from hypothesis import strategies as st


def test_summary_is_median_min_and_max_of_the_runs() -> None:
    assert summarize([3.0, 1.0, 2.0]) == Summary(median=2.0, min=1.0, max=3.0, runs=3)


def test_summary_of_an_even_number_of_runs_takes_the_middle_mean() -> None:
    assert summarize([1.0, 2.0, 4.0, 10.0]).median == 3.0


def test_summary_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        summarize([])


def test_runs_are_summarized_per_metric_present_in_every_run() -> None:
    runs = [{"rate": 10.0, "p99_ms": 5.0}, {"rate": 30.0}, {"rate": 20.0, "p99_ms": 1.0}]
    summaries = summarize_runs(runs)
    assert set(summaries) == {"rate"}
    assert summaries["rate"].median == 20.0


def test_ratio_divides_medians_and_is_none_without_both_figures() -> None:
    ours, ceiling = summarize([50.0, 60.0, 40.0]), summarize([100.0, 90.0, 110.0])
    assert ratio(ours, ceiling) == 0.5
    assert ratio(ours, None) is None
    assert ratio(None, ceiling) is None
    assert ratio(ours, summarize([0.0])) is None


def test_percentile_uses_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 99.9) == 100.0
    assert percentile([7.0], 99) == 7.0


@given(st.lists(st.floats(min_value=0, max_value=1e9), min_size=1, max_size=50))
def test_median_lies_between_min_and_max(values: list[float]) -> None:
    s = summarize(values)
    assert s.min <= s.median <= s.max
    assert s.runs == len(values)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_is_one_of_the_values_and_grows_with_q(values: list[float], q: float) -> None:
    ordered = sorted(values)
    found = percentile(ordered, q)
    assert found in ordered
    assert found <= percentile(ordered, 100)
