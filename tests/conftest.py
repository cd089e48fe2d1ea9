"""Shared fixtures: settings pointed at temporary folders, never at the user's data."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from bicameral.runtime.settings import Settings

pytest.register_assert_rewrite("tests.cloudevents", "tests.unit.tally")

hypothesis_settings.register_profile("thorough", max_examples=2_000, deadline=None)
"""Run ``pytest --hypothesis-profile=thorough tests/unit`` to search much harder."""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Returns embedded-default settings under a temporary data dir."""
    return Settings.load(environ={}, data_dir=tmp_path / "data")
