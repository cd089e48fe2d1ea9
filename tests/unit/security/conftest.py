"""Fixtures of the security tests: bearer tokens signed with the embedded key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bicameral.runtime.auth import embedded_key
from bicameral.runtime.settings import Settings
from bicameral.security.tokens import issue_token

TokenFactory = Callable[..., dict[str, str]]


@pytest.fixture
def bearer(settings: Settings) -> TokenFactory:
    """Returns ``bearer(subject, *roles, ttl=...)``: headers with a token signed by the
    embedded key of ``settings``'s data dir, as ``bicameral token issue`` makes them."""

    def make(subject: str, *roles: str, ttl: timedelta = timedelta(minutes=5)) -> dict[str, str]:
        token = issue_token(embedded_key(settings), subject=subject, roles=roles, ttl=ttl)
        return {"Authorization": f"Bearer {token}"}

    return make
