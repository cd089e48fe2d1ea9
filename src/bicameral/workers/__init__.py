"""What runs in the background: projectors and their partitions, the relay, reaction runners.

Each worker reads a feed of events (``feeds``), does its one job and keeps a checkpoint:

- ``projector``: folds events into a read model, checkpoint in the same commit;
- ``partitions``: several projector processes sharing a projection, by leases;
- ``relay``: publishes a service's own events to the transport, in order;
- ``reactions``: runs a service's reactions (event handlers that send commands: the steps of a
  process manager, or saga) exactly once per event;
- ``exclusive``: a lease that keeps one active copy of a worker, the others standing by.
"""
