"""Chooses the HTTP authenticator for a process from its settings."""

from __future__ import annotations

from bicameral.http.routes import Authenticator
from bicameral.runtime.settings import Settings

__all__ = ["authenticator_for"]


def authenticator_for(settings: Settings) -> Authenticator:
    """Returns the authenticator the settings ask for (anonymous until configured)."""
    from bicameral.http.app import anonymous

    return anonymous
