"""Read store adapters, one backend per module: ``memory``, ``sqlite``, ``postgres``, ``redis``."""

from __future__ import annotations

import re

from bicameral.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:@-]{0,120}$")


def checked_name(name: str) -> str:
    """Returns ``name`` if it is safe as a collection or field name; ConfigurationError if not."""
    if not _NAME.match(name):
        raise ConfigurationError(f"invalid read-model name {name!r}")
    return name
