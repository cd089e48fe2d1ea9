"""Checks that a real server is reachable, or a program installed, before a test uses it.

In CI (``CI=true``) an unreachable server or a missing program fails the test; elsewhere the
test is skipped with a message naming it and how to start or install it.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import NoReturn

import pytest

__all__ = ["START_COMMANDS", "require_program", "require_server"]

START_COMMANDS = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "redis": "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    "nats": "nats-server -a 127.0.0.1 -p 4222 -js &",
}
_PORTS = {"postgresql": 5432, "redis": 6379, "nats": 4222}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_server(name: str, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Returns if server ``name`` answers; otherwise fails (in CI) or skips the current test."""
    port = port or _PORTS[name]
    if _reachable(host, port):
        return
    message = (
        f"{name} is not reachable at {host}:{port}; start it with: "
        f"{START_COMMANDS.get(name, 'its service manager')}"
    )
    _missing(message)


def require_program(name: str, package: str) -> str:
    """Returns the path of program ``name``; otherwise fails (in CI) or skips the current test,
    saying to install Debian's ``package``."""
    found = shutil.which(name) or next(
        (
            path
            for path in (f"/usr/bin/{name}", f"/usr/sbin/{name}", f"/usr/local/bin/{name}")
            if os.access(path, os.X_OK)
        ),
        None,
    )
    if found is None:
        _missing(f"{name} is not installed; install it with: apt-get install {package}")
    return found


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
