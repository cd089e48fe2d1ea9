"""How a Node's projector role joins the partitioned projector group of each service."""

from __future__ import annotations

import pytest

from bicameral.runtime.node import ROLES, Node
from bicameral.runtime.settings import Settings
from shop.inventory.service import inventory


def memory_settings(**overrides: object) -> Settings:
    return Settings.load(
        environ={},
        events_url="memory://",
        reads_url="memory://",
        transport_url="memory://",
        **overrides,
    )


def test_an_all_roles_node_keeps_its_worker_name_across_restarts() -> None:
    """So after a crash it takes its partitions back without waiting for its leases to expire."""
    first, second = (Node(memory_settings(), [inventory], ROLES) for _ in range(2))
    names = {n.runtime("inventory").projector_group().worker for n in (first, second)}
    assert len(names) == 1


def test_projector_processes_have_names_of_their_own() -> None:
    first, second = (Node(memory_settings(), [inventory], ["projector"]) for _ in range(2))
    names = {n.runtime("inventory").projector_group().worker for n in (first, second)}
    assert len(names) == 2


def test_the_partition_count_comes_from_the_settings() -> None:
    node = Node(memory_settings(partitions=3, lease_ttl=4.0), [inventory], ["projector"])
    group = node.runtime("inventory").projector_group()
    assert (group.partitions, group.ttl) == (3, 4.0)
    assert [slot.projector.checkpoint_name for slot in group.slots] == [
        f"products.v1:inventory#p{i}" for i in range(3)
    ]


def test_a_query_process_never_connects_to_the_event_store_or_transport() -> None:
    node = Node(memory_settings(), [inventory], ["query-api"])
    rt = node.runtime("inventory")
    assert node.backends() == [rt.reads]


def test_the_old_role_name_saga_still_runs_the_reactions(caplog: pytest.LogCaptureFixture) -> None:
    """Configs written for earlier releases keep working, with a warning naming the new name."""
    node = Node(memory_settings(), [inventory], ["saga"])
    assert node.runtime("inventory").roles == frozenset({"reactions"})
    assert "'saga' is deprecated" in caplog.text
