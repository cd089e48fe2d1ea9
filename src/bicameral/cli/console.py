"""``bicameral console``: a one-time link signing an admin in to the web console."""

from __future__ import annotations

import getpass

import typer

from bicameral.errors import BicameralError
from bicameral.runtime.console import LINK_TTL, sign_in_link
from bicameral.runtime.settings import Settings

__all__ = ["base_url", "console_command"]

_ANY_HOST = {"0.0.0.0", "::", ""}


def base_url(settings: Settings, url: str | None = None) -> str:
    """Returns where the console is: ``url``, else ``[console] url``, else the settings'
    ``http://host:port`` (a wildcard host read as 127.0.0.1)."""
    if url:
        return url.rstrip("/")
    if settings.console.url:
        return settings.console.url.rstrip("/")
    host = "127.0.0.1" if settings.host in _ANY_HOST else settings.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _login() -> str:
    try:
        return getpass.getuser() or "admin"
    except (OSError, KeyError):
        return "admin"


def console_command(settings: Settings, url: str | None, subject: str | None) -> None:
    """Prints a sign-in link for admin ``subject`` (default: the login name) on stdout, and
    how long it lasts on stderr; a failure is one line and exit 1."""
    from bicameral.cli.main import fail

    try:
        link = sign_in_link(settings, base_url(settings, url), subject or _login())
    except BicameralError as exc:
        raise fail(exc.detail) from None
    typer.echo(link)
    minutes = int(LINK_TTL.total_seconds() // 60)
    typer.echo(f"bicameral: open it within {minutes} minutes; it works once", err=True)
