"""A checker of CloudEvents 1.0 JSON documents, after the spec's attribute rules."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["assert_valid_cloudevent"]

INT32 = 2**31 - 1
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)$"
)
NAME = re.compile(r"^[a-z0-9]+$")


def assert_valid_cloudevent(doc: dict[str, Any]) -> None:
    """Fails unless ``doc`` is a CloudEvents 1.0 JSON event per the spec's attribute rules."""
    assert doc["specversion"] == "1.0"
    for required in ("id", "source", "type"):
        assert isinstance(doc[required], str)
        assert doc[required]
    assert RFC3339.match(doc["time"]), doc["time"]
    assert doc["datacontenttype"] == "application/json"
    for name, value in doc.items():
        assert NAME.match(name), f"attribute name {name!r} is not [a-z0-9]+"
        assert len(name) <= 20, f"attribute name {name!r} is longer than 20"
        if name == "data":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**31) <= value <= INT32, f"{name} is not a CloudEvents Integer"
        else:
            assert isinstance(value, str | bool), f"{name} has a non-CloudEvents type"
