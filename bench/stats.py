"""Statistics of repeated runs: median with min and max, and ratios between figures."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Summary", "percentile", "ratio", "summarize", "summarize_runs"]


@dataclass(frozen=True, slots=True)
class Summary:
    """The median, min and max of one metric over the runs of a case."""

    median: float
    min: float
    max: float
    runs: int

    def to_json(self) -> dict[str, Any]:
        """Returns the summary as a JSON object."""
        return {"median": self.median, "min": self.min, "max": self.max, "runs": self.runs}


def summarize(values: Sequence[float]) -> Summary:
    """Returns the median, min and max of ``values`` (at least one)."""
    if not values:
        raise ValueError("no values to summarize")
    return Summary(statistics.median(values), min(values), max(values), len(values))


def summarize_runs(runs: Sequence[Mapping[str, float]]) -> dict[str, Summary]:
    """Returns a summary per metric found in every run."""
    if not runs:
        return {}
    keys = [k for k in runs[0] if all(k in run for run in runs)]
    return {k: summarize([float(run[k]) for run in runs]) for k in keys}


def ratio(ours: Summary | None, other: Summary | None) -> float | None:
    """Returns ``ours.median / other.median``, or None when either is missing or zero."""
    if ours is None or other is None or other.median == 0:
        return None
    return ours.median / other.median


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Returns the ``q``-th percentile (0-100) of already sorted values, nearest rank."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]
