"""The benchmark harness: ``python -m bench [--full]`` (see bench/README.md)."""
