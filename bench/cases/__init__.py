"""The benchmarks, registered by name in ``bench.registry``."""
