"""A started server's heap is settled: what starting made is kept out of later collections."""

from __future__ import annotations

import gc

from bicameral.runtime.heap import settle


def test_settle_freezes_what_is_left_after_collecting() -> None:
    kept = [object() for _ in range(10)]
    try:
        settle()
        assert gc.get_freeze_count() >= len(kept)
        assert gc.get_count()[0] < 10, "collected before freezing"
    finally:
        gc.unfreeze()
