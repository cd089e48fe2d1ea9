"""The benchmark chart: one SVG panel per table row, each figure beside its ceiling and peers."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.report import CaseResult, compare
from bench.stats import summarize
from bench.suite import Row, Target

pytest.importorskip("matplotlib")

from bench.chart import draw


def _ok(key: str, *values: float) -> CaseResult:
    return CaseResult(key, {"rate": summarize(list(values))})


def test_the_chart_is_an_svg_with_a_panel_per_row_and_the_target_drawn(tmp_path: Path) -> None:
    results = {
        "ours": _ok("ours", 900.0, 1000.0, 1100.0),
        "hello": _ok("hello", 20_000.0, 21_000.0, 22_000.0),
        "crud": _ok("crud", 1200.0, 1300.0, 1400.0),
    }
    rows = [
        Row(
            "HTTP commands/s",
            "req/s",
            ("ours", "rate"),
            ("hello", "rate"),
            target=Target(min_ratio=1.0, against="crud"),
            crud=("crud", "rate"),
        ),
        Row("Not run here", "req/s", ("missing", "rate")),
    ]
    compared = [compare(row, results) for row in rows]
    assert compared[0]["target_value"] == 1300.0
    out = draw(compared, tmp_path / "chart.svg", "bench")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml")
    for shown in ("HTTP commands/s (req/s)", "CRUD app", "ceiling", "target", "not run"):
        assert shown in text
