"""The report: figures per row with their ceiling and peer ratios, as JSON and Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.stats import Summary, ratio
from bench.suite import Row

__all__ = ["CaseResult", "compare", "format_summary", "markdown_table", "replace_section"]

START = "<!-- results:start -->"
END = "<!-- results:end -->"


class CaseResult:
    """What the runs of one case gave: per-metric summaries, or why there are none."""

    def __init__(
        self,
        key: str,
        summaries: Mapping[str, Summary] | None = None,
        *,
        status: str = "ok",
        reason: str = "",
        runs: Sequence[Mapping[str, float]] = (),
    ) -> None:
        self.key = key
        self.summaries = dict(summaries or {})
        self.status = status
        self.reason = reason
        self.runs = [dict(r) for r in runs]

    def metric(self, name: str) -> Summary | None:
        """Returns the summary of one metric, or None."""
        return self.summaries.get(name) if self.status == "ok" else None

    def to_json(self) -> dict[str, Any]:
        """Returns the case as a JSON object."""
        return {
            "status": self.status,
            "reason": self.reason,
            "runs": self.runs,
            "summary": {k: v.to_json() for k, v in self.summaries.items()},
        }


def _lookup(results: Mapping[str, CaseResult], ref: tuple[str, str] | None) -> Summary | None:
    if ref is None or ref[0] not in results:
        return None
    return results[ref[0]].metric(ref[1])


def _why(results: Mapping[str, CaseResult], ref: tuple[str, str] | None) -> str:
    if ref is None:
        return "-"
    found = results.get(ref[0])
    if found is None:
        return "not run"
    if found.status == "unavailable":
        return f"not available: {found.reason}"
    if found.status == "error":
        return f"failed: {found.reason}"
    return "-"


def compare(row: Row, results: Mapping[str, CaseResult]) -> dict[str, Any]:
    """Returns one row's figures, ratios and verdict as a JSON object."""
    ours = _lookup(results, row.ours)
    ceiling = _lookup(results, row.ceiling)
    peer = _lookup(results, row.peer)
    crud = _lookup(results, row.crud)
    x_ceiling = ratio(ours, ceiling)
    x_crud = ratio(ours, crud)
    ratios = {"ceiling": x_ceiling, "crud": x_crud}
    met = row.target.met(ours.median if ours else None, ratios) if row.target else None
    refs = {"ceiling": ceiling, "crud": crud}
    target_value = row.target.value(refs) if row.target else None
    return {
        "label": row.label,
        "unit": row.unit,
        "ours": ours.to_json() if ours else None,
        "ours_missing": "" if ours else _why(results, row.ours),
        "ceiling": ceiling.to_json() if ceiling else None,
        "ceiling_missing": "" if ceiling else _why(results, row.ceiling),
        "peer": peer.to_json() if peer else None,
        "peer_missing": "" if peer else _why(results, row.peer),
        "x_ceiling": x_ceiling,
        "x_peer": ratio(ours, peer),
        "crud": crud.to_json() if crud else None,
        "crud_missing": "" if crud else _why(results, row.crud),
        "x_crud": x_crud,
        "target": row.target.text() if row.target else "",
        "target_value": target_value,
        "met": met,
        "note": row.note,
    }


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_summary(summary: Mapping[str, Any] | None, missing: str = "-") -> str:
    """Returns ``median (min..max)``, or the reason the figure is missing."""
    if summary is None:
        return missing
    low, high = _num(summary["min"]), _num(summary["max"])
    return f"{_num(summary['median'])} ({low}..{high})"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "-"}[met]


def markdown_table(compared: Sequence[Mapping[str, Any]]) -> str:
    """Returns the results table in Markdown, one line per row."""
    lines = [
        "| Figure | Unit | bicameral | Ceiling | x ceiling | CRUD app | x CRUD "
        "| Peer (eventsourcing) | x peer | Target | Met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in compared:
        cells = [
            row["label"],
            row["unit"],
            format_summary(row["ours"], row["ours_missing"]),
            format_summary(row["ceiling"], row["ceiling_missing"]),
            _ratio(row["x_ceiling"]),
            format_summary(row.get("crud"), row.get("crud_missing", "-")),
            _ratio(row.get("x_crud")),
            format_summary(row["peer"], row["peer_missing"]),
            _ratio(row["x_peer"]),
            row["target"] or "-",
            _verdict(row["met"]),
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def machine_lines(machine: Mapping[str, Any]) -> str:
    """Returns the machine description as Markdown bullets."""
    return "\n".join(f"- {k}: {v}" for k, v in machine.items())


def replace_section(document: str, section: str) -> str:
    """Returns ``document`` with the text between the results markers replaced by ``section``."""
    block = f"{START}\n{section}\n{END}"
    if START in document and END in document:
        head, _, rest = document.partition(START)
        _, _, tail = rest.partition(END)
        return head + block + tail
    return document.rstrip("\n") + "\n\n" + block + "\n"
