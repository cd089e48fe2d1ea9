"""What the console's overview shows, read at once: every consumer's lag (as ``bicameral
status`` reports it) and the live processes, found by the leases they hold.

Workers hold leases named after their role (``members/projector.<service>/<worker>``,
``relay/<service>``, ``reactions/<service>/<source>``), so the owners of live leases are the
live worker processes, with the roles and services they work for. API processes hold no lease.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from bicameral.runtime.node import Node
from bicameral.runtime.status import WorkerStatus, command_side_status, projection_status

__all__ = ["consumer_row", "overview", "processes"]


def consumer_row(row: WorkerStatus) -> dict[str, Any]:
    """Returns one consumer's status as JSON, with its lag in events."""
    return {**asdict(row), "lag": row.lag, "lag_seconds": round(row.lag_seconds, 3)}


def _role(name: str) -> tuple[str, str] | None:
    """Returns the (service, role) a worker lease stands for, or None for other leases."""
    kind, _, rest = name.partition("/")
    if kind == "members" and rest.startswith("projector."):
        group = rest.partition("/")[0]
        return group.removeprefix("projector.").partition(".")[0], "projector"
    if kind in ("relay", "reactions") and rest:
        return rest.partition("/")[0], kind
    return None


def _partition(name: str) -> str | None:
    """Returns the projection partition a lease stands for (its checkpoint), or None."""
    kind, _, rest = name.partition("/")
    if kind != "partitions" or not rest.startswith("projector."):
        return None
    return rest.partition("/")[2] or None


async def processes(node: Node) -> list[dict[str, Any]]:
    """Returns each live worker process: its name, the roles it runs of each service, and the
    partitions it folds: projection checkpoint -> partition numbers (``products.v1:inventory``
    -> ``[0, 3]``; none for a projection of one partition)."""
    seen: dict[str, str] = {}
    stores = {id(rt.reads): rt.reads for rt in node.runtimes.values()}
    for store in stores.values():
        seen.update(await store.leases(""))
    roles: dict[str, set[tuple[str, str]]] = {}
    partitions: dict[str, dict[str, list[int]]] = {}
    for name, owner in seen.items():
        role = _role(name)
        if role is not None and role[0] in node.runtimes:
            roles.setdefault(owner, set()).add(role)
        partition = _partition(name)
        if partition is not None:
            base, mark, index = partition.rpartition("#p")
            held = partitions.setdefault(owner, {})
            if mark and index.isdigit():
                held.setdefault(base, []).append(int(index))
            else:
                held.setdefault(partition, [])
    return [
        {
            "process": owner,
            "roles": [f"{service} {role}" for service, role in sorted(held)],
            "partitions": {
                base: sorted(indexes) for base, indexes in sorted(partitions.get(owner, {}).items())
            },
        }
        for owner, held in sorted(roles.items())
    ]


async def overview(node: Node) -> dict[str, Any]:
    """Returns the consumers (one row each, as ``bicameral status``) and live processes of
    ``node``'s services, and the time read (epoch seconds)."""
    rows = await projection_status(node, partitions=False) + await command_side_status(node)
    return {
        "time": time.time(),
        "consumers": [consumer_row(row) for row in rows],
        "processes": await processes(node),
    }
