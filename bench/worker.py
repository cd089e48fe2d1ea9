"""Runs one benchmark in this process and prints its result as one JSON line.

``python -m bench.worker '{"bench": NAME, "params": {...}}'``; the last stdout line is
``{"ok": {metric: value}}``, ``{"unavailable": reason}`` or ``{"error": message}``. Each run
gets a fresh process, so runs do not share caches, and the peak RSS is this run's own.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import traceback
from typing import Any

from bench.registry import BENCHES, Unavailable


def _load_cases() -> None:
    from bench.cases import ceilings, http, ours, peer, scaleout  # noqa: F401


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Returns the outcome of the benchmark ``spec`` names."""
    _load_cases()
    fn = BENCHES[spec["bench"]]
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        result = runner(fn(spec.get("params", {})))
    except Unavailable as exc:
        return {"unavailable": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}
    result = dict(result)
    result.setdefault("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"ok": result}


def main() -> None:
    outcome = run(json.loads(sys.argv[1]))
    sys.stdout.flush()
    print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
