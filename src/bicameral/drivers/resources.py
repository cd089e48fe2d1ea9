"""Text that ships inside the package beside the adapter that runs it: SQL and Lua files.

Each is read once, through ``importlib.resources`` (so it is found in a wheel, a zip or a
source checkout alike), and kept.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

__all__ = ["resource", "schema_steps", "split_steps"]

_STEP = re.compile(r"^-- version (\d+)\b.*$", re.M)


@cache
def resource(package: str, name: str) -> str:
    """Returns the text of file ``name`` of ``package`` (e.g. ``bicameral.eventstore``)."""
    return files(package).joinpath(name).read_text(encoding="utf-8")


@cache
def schema_steps(package: str, name: str) -> tuple[str, ...]:
    """Returns the steps of schema file ``name`` of ``package``, one per version."""
    return split_steps(resource(package, name), f"{package}/{name}")


def split_steps(text: str, origin: str = "schema") -> tuple[str, ...]:
    """Returns the steps of a schema, one per version: the statements after each
    ``-- version N`` line, N counting up from 1 (what precedes the first is commentary)."""
    marks = list(_STEP.finditer(text))
    versions = [int(mark.group(1)) for mark in marks]
    if not marks or versions != list(range(1, len(marks) + 1)):
        raise ValueError(f"{origin}: versions {versions} do not count up from 1")
    ends = [mark.start() for mark in marks[1:]] + [len(text)]
    return tuple(
        text[mark.end() : end].strip() + "\n" for mark, end in zip(marks, ends, strict=True)
    )
