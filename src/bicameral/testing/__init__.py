"""Test support, public for users too: contract suites per port, fakes, server checks.

Subclass a contract suite once per backend and implement its factory::

    class TestMyEventStore(EventStoreContract):
        async def make_store(self) -> EventStore:
            return MyEventStore("svc", ...)
"""

from bicameral.testing.contracts.commits import CommitFeedContract
from bicameral.testing.contracts.eventstore import EventStoreContract
from bicameral.testing.contracts.readstore import ReadStoreContract
from bicameral.testing.contracts.snapshots import SnapshotStoreContract
from bicameral.testing.contracts.transport import TransportContract
from bicameral.testing.servers import require_server

__all__ = [
    "CommitFeedContract",
    "EventStoreContract",
    "ReadStoreContract",
    "SnapshotStoreContract",
    "TransportContract",
    "require_server",
]
