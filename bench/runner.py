"""Runs the cases: each run a fresh worker process with its own resources, rounds interleaved."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.cases.http import child_env
from bench.report import CaseResult
from bench.resources import RunResources
from bench.stats import summarize_runs
from bench.suite import Case

__all__ = ["run_cases", "run_worker"]

TIMEOUT = 3600
ATTEMPTS = 3
"""Tries per run before a failing case is given up (the servers are shared and busy)."""


def run_worker(bench: str, params: dict[str, Any]) -> dict[str, Any]:
    """Returns the outcome a worker process reports for one benchmark run."""
    spec = json.dumps({"bench": bench, "params": params})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", spec],
            env=child_env(params.get("root")),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT}s"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])  # type: ignore[no-any-return]
    except (IndexError, json.JSONDecodeError):
        tail = " / ".join(done.stderr.strip().splitlines()[-3:])
        return {"error": f"worker exited {done.returncode}: {tail}"}


def _one_run(case: Case) -> dict[str, Any]:
    res = asyncio.run(RunResources.acquire(case.needs))
    try:
        params = {**case.params, **res.params()}
        if case.setup is not None:
            prepared = run_worker(case.setup, params)
            if "ok" not in prepared:
                return prepared
        return run_worker(case.bench, params)
    finally:
        asyncio.run(res.release(case.needs))


def run_cases(
    cases: Sequence[Case], runs: int, say: Callable[[str], None] = print
) -> dict[str, CaseResult]:
    """Returns each case's result over ``runs`` rounds; a case that cannot run stops early."""
    good: dict[str, list[dict[str, float]]] = {c.key: [] for c in cases}
    verdict: dict[str, CaseResult] = {}
    for round_no in range(1, runs + 1):
        for case in cases:
            if case.key in verdict:
                continue
            started = time.perf_counter()
            outcome = _one_run(case)
            for _ in range(ATTEMPTS - 1):
                if "error" not in outcome:
                    break
                say(f"[{round_no}/{runs}] {case.key}: retrying after {outcome['error']}")
                time.sleep(2)
                outcome = _one_run(case)
            took = time.perf_counter() - started
            if "ok" in outcome:
                good[case.key].append(outcome["ok"])
                rate = outcome["ok"].get("rate")
                shown = f"{rate:,.1f}" if rate is not None else "ok"
                say(f"[{round_no}/{runs}] {case.key}: {shown} ({took:.1f}s)")
            elif "unavailable" in outcome:
                verdict[case.key] = CaseResult(
                    case.key, status="unavailable", reason=outcome["unavailable"]
                )
                say(f"[{round_no}/{runs}] {case.key}: not available: {outcome['unavailable']}")
            else:
                verdict[case.key] = CaseResult(
                    case.key, status="error", reason=outcome["error"], runs=good[case.key]
                )
                say(f"[{round_no}/{runs}] {case.key}: FAILED: {outcome['error']}")
    for case in cases:
        if case.key not in verdict:
            verdict[case.key] = CaseResult(
                case.key, summarize_runs(good[case.key]), runs=good[case.key]
            )
    return verdict
