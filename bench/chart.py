"""The chart: every figure of a run beside its ceiling and peers, one panel per table row.

Each panel has one bar per column of the table that has a figure (bicameral, the ceiling, the
CRUD app, eventsourcing) at the median, with a whisker from the min to the max run, and the
target as a dashed line where the row has one. Drawn with matplotlib (the ``bench`` extra)
as SVG with its text kept as text.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["draw"]

SERIES = (
    ("ours", "bicameral", "#1f77b4"),
    ("ceiling", "ceiling", "#7f7f7f"),
    ("crud", "CRUD app", "#ff7f0e"),
    ("peer", "eventsourcing", "#2ca02c"),
)
COLUMNS = 3


def _bars(row: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, float]]]:
    return [(label, color, row[key]) for key, label, color in SERIES if row.get(key)]


def _panel(ax: Any, row: Mapping[str, Any]) -> None:
    from matplotlib.ticker import MaxNLocator

    bars = _bars(row)
    title = "\n".join(textwrap.wrap(f"{row['label']} ({row['unit']})", 48))
    ax.set_title(title, fontsize=8, loc="left")
    ax.tick_params(labelsize=7)
    if not bars:
        ax.text(
            0.5,
            0.5,
            row.get("ours_missing") or "no figure",
            ha="center",
            va="center",
            fontsize=7,
            transform=ax.transAxes,
            wrap=True,
        )
        ax.set_axis_off()
        return
    names = [b[0] for b in bars][::-1]
    medians = [b[2]["median"] for b in bars][::-1]
    low = [b[2]["median"] - b[2]["min"] for b in bars][::-1]
    high = [b[2]["max"] - b[2]["median"] for b in bars][::-1]
    colors = [b[1] for b in bars][::-1]
    y = range(len(bars))
    ax.barh(y, medians, color=colors, xerr=[low, high], error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_yticks(list(y), names)
    top = max(b[2]["max"] for b in bars)
    target = row.get("target_value")
    if target is not None:
        ax.axvline(target, color="#d62728", linestyle="--", linewidth=1)
        top = max(top, target)
        ax.text(
            target,
            len(bars) - 0.5,
            f" target {row['target']}",
            color="#d62728",
            fontsize=6,
            va="bottom",
        )
    for i, value in enumerate(medians):
        ax.text(
            value, i, f" {value:,.3g}" if value < 100 else f" {value:,.0f}", va="center", fontsize=6
        )
    ax.set_xlim(0, top * 1.3 or 1)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.grid(axis="x", linewidth=0.3)


def draw(compared: Sequence[Mapping[str, Any]], out: Path, title: str) -> Path:
    """Writes the chart of ``compared`` (the report's rows) to ``out`` as SVG; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"
    lines = math.ceil(len(compared) / COLUMNS)
    fig, axes = plt.subplots(lines, COLUMNS, figsize=(5.2 * COLUMNS, 1.9 * lines), squeeze=False)
    for ax, row in zip(axes.flat, compared, strict=False):
        _panel(ax, row)
    for ax in list(axes.flat)[len(compared) :]:
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (1.9 * lines)))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out
