"""bicameral up's worker process: its metrics join the API process's, one family per name;
the API process wakes it only for event stores that cannot announce their commits."""

from __future__ import annotations

from prometheus_client import generate_latest

from bicameral import metrics
from bicameral.runtime.node import API_ROLES, Node
from bicameral.runtime.settings import Settings
from bicameral.runtime.workers import MergedMetrics, WorkerProcess, labelled, tell_appends
from shop.inventory.service import inventory

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


def test_only_buses_whose_event_store_can_be_woken_tell_the_worker_process(
    settings: Settings,
) -> None:
    """A PostgreSQL store announces its own commits: its bus sends the child no wake-ups."""
    node = Node(settings, [inventory], API_ROLES)
    process = WorkerProcess(["true"], [])
    runtime = node.runtime("inventory")
    tell_appends(node, process)
    assert runtime.commands.notifier is not runtime.notifier, "SQLite is woken by the parent"

    pg = Settings.load(
        environ={"BICAMERAL_EVENTS_URL": "postgresql://127.0.0.1/unused_{service}"},
        data_dir=settings.data_dir,
    )
    node = Node(pg, [inventory], API_ROLES)
    tell_appends(node, process)
    assert node.runtime("inventory").commands.notifier is node.runtime("inventory").notifier
