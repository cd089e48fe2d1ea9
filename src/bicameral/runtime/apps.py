"""Finding the services to run: an ``module:attribute`` path or an installed entry point."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from bicameral.errors import ConfigurationError
from bicameral.service import Service

__all__ = ["load_services"]

GROUP = "bicameral.apps"


def _resolve(target: Any) -> list[Service]:
    found = target() if callable(target) and not isinstance(target, Service) else target
    if isinstance(found, Service):
        return [found]
    if isinstance(found, Sequence) and all(isinstance(s, Service) for s in found):
        return list(found)
    raise ConfigurationError(f"{target!r} is not a Service or a list of them")


def load_services(app: str = "") -> list[Service]:
    """Returns the services named by ``app`` (``module:attr``), or by the one installed app."""
    if app:
        module, _, attr = app.partition(":")
        try:
            target = getattr(importlib.import_module(module), attr or "services")
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(f"cannot load app {app!r}: {exc}") from None
        return _resolve(target)
    installed = list(entry_points(group=GROUP))
    if len(installed) != 1:
        names = ", ".join(ep.name for ep in installed) or "none"
        raise ConfigurationError(f"name the app with --app module:attr (installed apps: {names})")
    return _resolve(installed[0].load())
