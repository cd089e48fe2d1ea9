"""HTML built safely: every value is escaped unless it is ``Safe`` (built here, or a template).

Templates are package files with ``$name`` placeholders (``string.Template``); ``page`` fills
them, escaping each value that is not ``Safe``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from string import Template

__all__ = ["Safe", "escape", "join", "page", "static_file", "tag"]

_PACKAGE = "bicameral.http.console"
_VOID = frozenset({"input", "br", "meta", "link"})


class Safe(str):
    """Text that is HTML already: never escaped again."""

    __slots__ = ()


def escape(value: object) -> Safe:
    """Returns ``value`` as HTML: itself when Safe, else its text escaped (quotes included)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(str(value), quote=True))


def join(parts: Iterable[object]) -> Safe:
    """Returns the parts, each escaped unless Safe, one after the other."""
    return Safe("".join(escape(p) for p in parts))


def tag(name: str, attrs: Mapping[str, object] | None = None, *children: object) -> Safe:
    """Returns element ``name`` with ``attrs`` (None or False leaves one out, True writes its
    name alone) around ``children``, every value escaped unless Safe."""
    text = [name]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        text.append(key if value is True else f'{key}="{escape(value)}"')
    opening = f"<{' '.join(text)}>"
    if name in _VOID:
        return Safe(opening)
    return Safe(f"{opening}{join(children)}</{name}>")


@cache
def _template(name: str) -> Template:
    return Template(files(_PACKAGE).joinpath("templates", name).read_text("utf-8"))


def page(template: str, **values: object) -> Safe:
    """Returns template ``template`` filled with ``values``, each escaped unless Safe."""
    return Safe(_template(template).substitute({k: escape(v) for k, v in values.items()}))


@cache
def static_file(name: str) -> bytes | None:
    """Returns the bytes of static file ``name`` shipped with the console, or None."""
    if not name or "/" in name or name.startswith("."):
        return None
    found = files(_PACKAGE).joinpath("static", name)
    return found.read_bytes() if found.is_file() else None
