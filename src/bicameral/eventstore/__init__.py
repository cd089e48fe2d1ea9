"""Event store adapters, one backend per module: ``memory``, ``sqlite``, ``postgres``."""
