"""The benchmark functions by name, and the error a benchmark raises when it cannot run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["BENCHES", "BenchFn", "Unavailable", "bench", "need_module"]

BenchFn = Callable[[dict[str, Any]], Awaitable[dict[str, float]]]
BENCHES: dict[str, BenchFn] = {}


class Unavailable(Exception):
    """The benchmark cannot run here: a module or a server is missing."""


def bench(name: str) -> Callable[[BenchFn], BenchFn]:
    """Registers the decorated async function under ``name``."""

    def register(fn: BenchFn) -> BenchFn:
        if name in BENCHES:
            raise ValueError(f"benchmark {name} registered twice")
        BENCHES[name] = fn
        return fn

    return register


def need_module(module: str, attr: str) -> Any:
    """Returns ``module.attr``, or raises Unavailable naming what is missing."""
    import importlib

    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise Unavailable(f"{module} is not built yet") from None
        raise Unavailable(f"{module} cannot be imported ({exc})") from None
    except ImportError as exc:
        raise Unavailable(f"{module} cannot be imported ({exc})") from None
    try:
        return getattr(found, attr)
    except AttributeError:
        raise Unavailable(f"{module} has no {attr}") from None
