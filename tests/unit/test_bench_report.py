"""The benchmark report: each figure beside its ceiling and peer, ratios, targets, Markdown."""

from __future__ import annotations

from bench.report import (
    CaseResult,
    compare,
    format_summary,
    markdown_table,
    replace_section,
)
from bench.stats import summarize
from bench.suite import Row, Target, cases, rows


def _ok(key: str, **metrics: list[float]) -> CaseResult:
    return CaseResult(key, {m: summarize(v) for m, v in metrics.items()})


ROW = Row(
    "Commands/s, PostgreSQL, 16 clients",
    "commands/s",
    ("ours", "rate"),
    ("ceiling", "rate"),
    ("peer", "rate"),
    Target(min_ratio=1.0),
)


def test_a_row_shows_ratios_to_ceiling_and_peer_and_whether_the_target_holds() -> None:
    results = {
        "ours": _ok("ours", rate=[900.0, 1000.0, 1100.0]),
        "ceiling": _ok("ceiling", rate=[2000.0, 2000.0, 2000.0]),
        "peer": _ok("peer", rate=[100.0, 100.0, 100.0]),
    }
    row = compare(ROW, results)
    assert row["x_ceiling"] == 0.5
    assert row["x_peer"] == 10.0
    assert row["met"] is False
    assert row["ours"] == {"median": 1000.0, "min": 900.0, "max": 1100.0, "runs": 3}


def test_a_missing_backend_is_reported_as_not_available_with_its_reason() -> None:
    results = {
        "ours": CaseResult("ours", status="unavailable", reason="module missing"),
        "ceiling": _ok("ceiling", rate=[2000.0, 2000.0, 2000.0]),
    }
    row = compare(ROW, results)
    assert row["ours"] is None
    assert row["ours_missing"] == "not available: module missing"
    assert row["peer_missing"] == "not run"
    assert row["x_ceiling"] is None
    assert row["met"] is None
    table = markdown_table([row])
    assert "not available: module missing" in table


def test_an_upper_bound_target_is_met_at_or_below_it() -> None:
    bound = Target(max=200)
    assert bound.met(150.0, {}) is True
    assert bound.met(250.0, {}) is False
    assert bound.met(None, {}) is None
    assert bound.text() == "≤ 200"


def test_a_row_compares_with_the_crud_peer_and_its_target_may_be_against_it() -> None:
    row = Row(
        "HTTP commands/s",
        "req/s",
        ("ours", "rate"),
        ("ceiling", "rate"),
        target=Target(min_ratio=1.0, against="crud"),
        crud=("crud", "rate"),
    )
    results = {
        "ours": _ok("ours", rate=[1200.0, 1200.0, 1200.0]),
        "ceiling": _ok("ceiling", rate=[6000.0, 6000.0, 6000.0]),
        "crud": _ok("crud", rate=[1000.0, 1000.0, 1000.0]),
    }
    out = compare(row, results)
    assert out["x_crud"] == 1.2
    assert out["x_ceiling"] == 0.2
    assert out["met"] is True
    assert out["target"] == "≥ 1x CRUD"
    assert "| 1,000 (1,000..1,000) | 1.20x |" in markdown_table([out])


def test_an_upper_bound_on_the_ratio_to_the_crud_peer() -> None:
    bound = Target(max_ratio=1.0, against="crud")
    assert bound.met(30.0, {"crud": 0.9}) is True
    assert bound.met(30.0, {"crud": 1.1}) is False
    assert bound.met(30.0, {"crud": None}) is None
    assert bound.text() == "≤ 1x CRUD"


def test_summary_cells_show_median_then_min_and_max() -> None:
    cell = format_summary({"median": 12_345.6, "min": 9.5, "max": 20_000.0})
    assert cell == "12,346 (9.50..20,000)"
    assert format_summary(None, "failed: boom") == "failed: boom"


def test_the_results_section_of_the_readme_is_replaced_in_place() -> None:
    doc = "# B\n\nintro\n<!-- results:start -->\nold\n<!-- results:end -->\n\n## Profile\n"
    out = replace_section(doc, "new")
    assert out == "# B\n\nintro\n<!-- results:start -->\nnew\n<!-- results:end -->\n\n## Profile\n"
    assert replace_section("# B\n", "new").endswith(
        "<!-- results:start -->\nnew\n<!-- results:end -->\n"
    )


def test_every_row_refers_to_cases_the_suite_runs() -> None:
    keys = {c.key for c in cases(full=False)}
    for row in rows():
        for ref in (row.ours, row.ceiling, row.peer, row.crud):
            assert ref is None or ref[0] in keys, (row.label, ref)
    assert {c.key for c in cases(full=True)} == keys
