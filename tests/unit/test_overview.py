"""The console's overview: worker processes found by the leases they hold."""

from __future__ import annotations

from pathlib import Path

from bicameral.runtime.node import Node
from bicameral.runtime.overview import overview, processes
from bicameral.runtime.settings import Settings
from tests.parking_app import services


async def test_processes_are_the_owners_of_worker_leases(tmp_path: Path) -> None:
    memory = {f"{kind}_url": "memory://" for kind in ("events", "reads", "transport")}
    node = Node(Settings.load(environ={}, data_dir=tmp_path, **memory), services(), roles=())
    await node.start()
    try:
        reads = node.runtime("ledger").reads
        for name, owner in [
            ("members/projector.ledger/w1", "w1"),
            ("partitions/projector.ledger/books.v1:bank#p1", "w1"),
            ("relay/bank", "w2"),
            ("reactions/ledger/bank", "w2"),
            ("console/sessions/abc", "ops"),  # not a worker's
            ("members/projector.elsewhere/w3", "w3"),  # not a service of this node
        ]:
            assert await reads.acquire_lease(name, owner, 60)
        assert await processes(node) == [
            {"process": "w1", "roles": ["ledger projector"], "partitions": {"books.v1:bank": [1]}},
            {"process": "w2", "roles": ["bank relay", "ledger reactions"], "partitions": {}},
        ]
        reading = await overview(node)
        assert {c["name"] for c in reading["consumers"]} >= {"books.v1:bank", "relay"}
    finally:
        await node.stop()
