"""Shared fixtures: settings pointed at temporary folders, never at the user's data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bicameral.runtime.settings import Settings
from bicameral.security.tokens import issue_token
from bicameral.security.wiring import embedded_key

TokenFactory = Callable[..., dict[str, str]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Returns embedded-default settings under a temporary data dir."""
    return Settings.load(environ={}, data_dir=tmp_path / "data")


@pytest.fixture
def bearer(settings: Settings) -> TokenFactory:
    """Returns ``bearer(subject, *roles, ttl=...)``: headers with a token signed by the
    embedded key of ``settings``'s data dir, as ``bicameral token issue`` makes them."""

    def make(subject: str, *roles: str, ttl: timedelta = timedelta(minutes=5)) -> dict[str, str]:
        token = issue_token(embedded_key(settings), subject=subject, roles=roles, ttl=ttl)
        return {"Authorization": f"Bearer {token}"}

    return make
