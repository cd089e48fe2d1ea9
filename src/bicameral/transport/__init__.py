"""Transport adapters, one backend per module: ``memory``, ``sqlite`` (embedded), ``nats``."""
