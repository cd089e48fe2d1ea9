"""Shared fixtures: settings pointed at temporary folders, never at the user's data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bicameral.runtime.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Returns embedded-default settings under a temporary data dir."""
    return Settings.load(environ={}, data_dir=tmp_path / "data")
