"""Checks that a real server is reachable before an integration test uses it.

In CI (``CI=true``) an unreachable server fails the test; elsewhere the test is skipped with a
message naming the server and how to start it.
"""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["START_COMMANDS", "require_server"]

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
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
