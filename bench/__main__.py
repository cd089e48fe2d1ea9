"""``python -m bench [--full] [--only SUBSTRING] [--runs N] [--name NAME] [--baseline DIR]``.

Runs the suite, writes ``bench/results/<date>-<name>.json`` and the table in
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.machine import describe, load_average
from bench.report import compare, machine_lines, markdown_table, replace_section
from bench.runner import run_cases
from bench.suite import cases, rows

HERE = Path(__file__).resolve().parent


def draw_chart(compared: list[dict[str, Any]], out: Path, title: str) -> Path | None:
    """Returns the SVG chart written beside the results, or None without matplotlib."""
    try:
        from bench.chart import draw

        return draw(compared, out, title)
    except ImportError as exc:
        print(f"no chart: {exc} (install the bench extra)")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--full", action="store_true", help="the whole suite (1M-event rebuilds)")
    parser.add_argument("--only", action="append", default=[], help="run cases whose key has this")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (at least 3)")
    parser.add_argument("--name", default=None, help="result file name (default quick/full)")
    parser.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    parser.add_argument(
        "--baseline",
        default=None,
        help="a checkout of other code: each chosen case also runs on it (key@baseline), "
        "interleaved with ours in the same rounds",
    )
    args = parser.parse_args()
    runs = max(3, args.runs)
    chosen = [c for c in cases(args.full) if not args.only or any(s in c.key for s in args.only)]
    if args.baseline:
        root = str(Path(args.baseline).resolve())
        chosen = [
            twin
            for c in chosen
            for twin in (c, replace(c, key=f"{c.key}@baseline", params={**c.params, "root": root}))
        ]
    started = datetime.datetime.now(datetime.UTC)
    machine = describe()
    print("machine:", json.dumps(machine))
    results = run_cases(chosen, runs)
    machine["load average at end"] = load_average()
    compared = [compare(row, results) for row in rows()]
    name = args.name or ("full" if args.full else "quick")
    stamp = started.strftime("%Y-%m-%d")
    report = {
        "name": name,
        "started": started.isoformat(),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(),
        "full": args.full,
        "runs": runs,
        "machine": machine,
        "rows": compared,
        "cases": {key: r.to_json() for key, r in results.items()},
        "params": {c.key: c.params for c in chosen},
    }
    out = HERE / "results" / f"{stamp}-{name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(compared)
    print(table)
    print(f"wrote {out}")
    chart = draw_chart(compared, out.with_suffix(".svg"), f"bicameral bench, {name} of {stamp}")
    if not args.no_readme:
        section = (
            f"Run `{name}` of {stamp} ({'full' if args.full else 'quick'} suite, {runs} runs per "
            f"figure; median (min..max)); raw data: `bench/results/{out.name}`.\n\n"
            f"Machine:\n\n{machine_lines(machine)}\n\n{table}"
        )
        if chart is not None:
            section += (
                f"\n\nThe same figures as a chart (`bench/results/{chart.name}`; bars at the "
                f"median, whiskers from min to max, the target dashed):\n\n"
                f"![bench chart](results/{chart.name})"
            )
        readme = HERE / "README.md"
        text = readme.read_text() if readme.exists() else "# Benchmarks\n"
        readme.write_text(replace_section(text, section))


if __name__ == "__main__":
    main()
