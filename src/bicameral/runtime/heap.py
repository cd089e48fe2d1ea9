"""The heap of a long-running process, settled once it has started.

What a server makes while it starts (imported modules, the app and its routes, models,
connections) lives as long as the process. Python's full collections scan every tracked object
each time: with all of that in the heap, each took about 100 ms of CPU in ``bicameral up``'s API
process, a few every ten seconds under load. ``settle`` collects once and freezes what is left
(``gc.freeze``), so later collections scan only what was made since.
"""

from __future__ import annotations

import gc

__all__ = ["settle"]


def settle() -> None:
    """Collects start-up's garbage, then keeps every object left out of later collections."""
    gc.collect()
    gc.freeze()
