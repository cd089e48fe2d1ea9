"""bicameral up's worker process: its metrics join the API process's, one family per name."""

from __future__ import annotations

from prometheus_client import generate_latest

from bicameral import metrics
from bicameral.runtime.workers import MergedMetrics, labelled

CHILD = """\
# HELP bicameral_ready 1 when every backend this process uses answers, else 0.
# TYPE bicameral_ready gauge
bicameral_ready 1.0
# HELP bicameral_worker_only_total Something only the worker process counts.
# TYPE bicameral_worker_only_total counter
bicameral_worker_only_total{service="inventory"} 3.0
"""


def test_the_worker_series_join_this_process_families_labelled_as_the_workers() -> None:
    metrics.READY.set(1)
    text = generate_latest(MergedMetrics(labelled(CHILD))).decode()
    assert text.count("# TYPE bicameral_ready gauge") == 1
    assert "\nbicameral_ready 1.0\n" in text
    assert 'bicameral_ready{process="workers"} 1.0' in text
    assert 'bicameral_worker_only_total{process="workers",service="inventory"} 3.0' in text
