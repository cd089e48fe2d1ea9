"""Finding the services to run: ``module:attr``, ``path/to/file.py:attr``, or an entry point.

``module`` is imported as ``python -m`` would, with the current folder first on the path, so
``bicameral up --app mymodule:bank`` finds ``./mymodule.py``. A file path is loaded as a module
named after the file, with its folder on the path for its own imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from bicameral.errors import BicameralError, ConfigurationError
from bicameral.service import Service

__all__ = ["import_target", "load_services"]

GROUP = "bicameral.apps"


def _on_path(folder: Path) -> None:
    entry = str(folder.resolve())
    if entry not in sys.path:
        sys.path.insert(0, entry)


def _from_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigurationError(f"no file {path}")
    name = path.stem
    known = sys.modules.get(name)
    if known is not None and getattr(known, "__file__", None) == str(path.resolve()):
        return known
    if known is not None:
        name = f"_bicameral_app_{name}"
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{path} is not a Python module")
    _on_path(path.parent)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_target(target: str, default_attr: str = "") -> Any:
    """Returns the object ``target`` names: ``module:attr`` or ``path/to/file.py:attr``.

    Raises ConfigurationError, naming the target, when it cannot be imported or has no attr.
    """
    where, colon, attr = target.rpartition(":")
    if not colon:
        where, attr = target, default_attr
    try:
        if where.endswith(".py") or os.sep in where or "/" in where:
            module = _from_file(Path(where))
        else:
            _on_path(Path.cwd())
            module = importlib.import_module(where)
        return getattr(module, attr) if attr else module
    except BicameralError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"cannot load {target!r}: {type(exc).__name__}: {exc}") from None


def _resolve(target: Any) -> list[Service]:
    found = target() if callable(target) and not isinstance(target, Service) else target
    if isinstance(found, Service):
        return [found]
    if isinstance(found, Sequence) and all(isinstance(s, Service) for s in found):
        return list(found)
    raise ConfigurationError(f"{target!r} is not a Service or a list of them")


def load_services(app: str = "") -> list[Service]:
    """Returns the services named by ``app`` (``module:attr`` or ``file.py:attr``), or by the
    one installed app (entry point group ``bicameral.apps``)."""
    if app:
        return _resolve(import_target(app, default_attr="services"))
    installed = list(entry_points(group=GROUP))
    if len(installed) != 1:
        names = ", ".join(ep.name for ep in installed) or "none"
        raise ConfigurationError(f"name the app with --app module:attr (installed apps: {names})")
    return _resolve(installed[0].load())
