"""Where a service's live queries hear of commits: its read store's change feed when it has
one (``bicameral.ports.CommitFeed``: every backend shipped here), else this process's commits."""

from __future__ import annotations

from bicameral.commits import Commits
from bicameral.ports import CommitFeed
from bicameral.runtime.node import ServiceRuntime
from bicameral.workers.live import LiveQueries, in_process

__all__ = ["commits_of", "live_queries"]


def commits_of(runtime: ServiceRuntime) -> Commits:
    """Returns the commit notices of ``runtime``'s read store, by any process if it can tell."""
    reads = runtime.reads
    if isinstance(reads, CommitFeed):
        return reads.commits()
    return in_process(runtime.notifier)


def live_queries(runtime: ServiceRuntime) -> LiveQueries:
    """Returns a hub of live queries for ``runtime``'s service."""
    return LiveQueries(runtime.queries, commits_of(runtime))
