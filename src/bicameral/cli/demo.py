"""``bicameral demo``: run a load driver an installed app ships (entry point ``bicameral.demos``).

A demo is a callable ``load(url: str, orders: int, concurrency: int, token: str) -> bool`` (or
a coroutine function) that drives a running system over HTTP, sending ``token`` as its bearer
token, and returns whether its checks held. Without ``--token``, the command signs an admin
token with the embedded key of the data dir (which the server makes; this command never does).
The URL is ``--url``, else ``BICAMERAL_URL``, else ``http://127.0.0.1:${PORT:-8000}``.
The library knows no demo itself: apps register
theirs, e.g. in ``pyproject.toml``::

    [project.entry-points."bicameral.demos"]
    shop = "shop.demo:load"
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer

from bicameral.errors import BicameralError, ConfigurationError
from bicameral.runtime.apps import import_target
from bicameral.runtime.settings import Settings

__all__ = ["GROUP", "default_url", "demo_app", "find_demo"]

GROUP = "bicameral.demos"

demo_app = typer.Typer(help="Drive a running system with an installed demo.", no_args_is_help=True)


def find_demo(name: str = "") -> Callable[..., Any]:
    """Returns the demo named ``name`` (an entry point name or ``module:attr``), or the only one."""
    if ":" in name:
        found: Callable[..., Any] = import_target(name)
        return found
    installed = list(entry_points(group=GROUP))
    chosen = [ep for ep in installed if ep.name == name] if name else installed
    if len(chosen) != 1:
        names = ", ".join(ep.name for ep in installed) or "none"
        raise ConfigurationError(f"name the demo with --demo (installed demos: {names})")
    loaded: Callable[..., Any] = chosen[0].load()
    return loaded


@demo_app.command("load")
def load(
    orders: Annotated[int, typer.Option(min=1, help="How many orders to place.")] = 100,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="BICAMERAL_URL",
            help="Base URL of the running system.",
            show_default="$BICAMERAL_URL, else http://127.0.0.1:${PORT:-8000}",
        ),
    ] = None,
    demo: Annotated[
        str,
        typer.Option(
            help="Demo entry point name, or module:attr.", show_default="the one installed demo"
        ),
    ] = "",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="BICAMERAL_TOKEN",
            help="Bearer token.",
            show_default="$BICAMERAL_TOKEN, else an admin token signed with the data dir's key",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the server keeps its signing key.",
            show_default="$BICAMERAL_DATA_DIR, else .bicameral",
        ),
    ] = None,
) -> None:
    """Drive a running system with many concurrent users, then check its invariants."""
    from bicameral.cli.main import fail, settings_from

    try:
        driver = find_demo(demo)
        if not token:
            token = _admin_token(settings_from(None, data_dir=data_dir))
    except BicameralError as exc:
        raise fail(exc.detail) from None
    base = (url or default_url()).rstrip("/")
    result = driver(url=base, orders=orders, concurrency=concurrency, token=token)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    if not result:
        raise typer.Exit(1)


def default_url(environ: Mapping[str, str] | None = None) -> str:
    """Returns ``http://127.0.0.1:$PORT`` (port 8000 without ``PORT``), where ``make run``
    serves."""
    env = os.environ if environ is None else environ
    return f"http://127.0.0.1:{env.get('PORT') or 8000}"


def _admin_token(settings: Settings) -> str:
    from bicameral.runtime.auth import AuthSettings, embedded_key
    from bicameral.security.tokens import issue_token

    auth = AuthSettings.from_mapping(settings.auth)
    if auth.jwks_file is not None:
        raise ConfigurationError("auth uses a JWKS file: pass --token from its identity provider")
    return issue_token(
        embedded_key(settings, create=False),
        subject="demo",
        roles=["admin"],
        issuer=auth.issuer,
        audience=auth.audience,
    )


async def _wait(awaitable: Any) -> Any:
    return await awaitable
