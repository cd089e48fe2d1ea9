"""Shared fixtures: settings pointed at temporary folders, never at the user's data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from bicameral.runtime.settings import Settings

pytest.register_assert_rewrite("tests.cloudevents", "tests.unit.tally")

_UNDER_LOAD = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
"""No wall-clock rule: CI shares a 2-core machine with other work; no example fails for time."""

hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True, **_UNDER_LOAD)
hypothesis_settings.register_profile("default", **_UNDER_LOAD)
hypothesis_settings.register_profile("thorough", max_examples=2_000, **_UNDER_LOAD)
"""Run ``pytest --hypothesis-profile=thorough tests/unit`` to search much harder."""
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Returns embedded-default settings under a temporary data dir."""
    return Settings.load(environ={}, data_dir=tmp_path / "data")
