"""Prometheus metrics every process exports at ``/metrics``.

Consumers (projection partitions, relays, reaction runners) are metered in
``bicameral.workers.meters``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "COMMANDS",
    "COMMAND_SECONDS",
    "EVENTS_APPENDED",
    "PARKED_EVENTS",
    "PROJECTED_EVENTS",
    "QUERIES",
    "QUERY_SECONDS",
    "REACTIONS_REFUSED",
    "READY",
]

COMMANDS = Counter(
    "bicameral_commands_total", "Commands handled", ["service", "command", "outcome"]
)
COMMAND_SECONDS = Histogram(
    "bicameral_command_seconds", "Time to handle a command", ["service", "command"]
)
QUERIES = Counter("bicameral_queries_total", "Queries served", ["service", "query", "outcome"])
QUERY_SECONDS = Histogram("bicameral_query_seconds", "Time to serve a query", ["service", "query"])
EVENTS_APPENDED = Counter("bicameral_events_appended_total", "Events appended", ["service"])
PROJECTED_EVENTS = Counter(
    "bicameral_projected_events_total", "Events folded into read models", ["projection"]
)
READY = Gauge("bicameral_ready", "1 when the process is ready to serve (as /health/ready), else 0")
PARKED_EVENTS = Counter(
    "bicameral_parked_events_total", "Events parked after a poison failure", ["consumer"]
)
REACTIONS_REFUSED = Counter(
    "bicameral_reactions_refused_total",
    "Reaction commands refused by a business rule (recorded, not parked)",
    ["reaction"],
)
