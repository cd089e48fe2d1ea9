"""The shop as a user runs it: ``bicameral up`` in a subprocess, driven over HTTP and the CLI.

Every request goes through ``client_options`` (one set of default headers): an admin's bearer
token, signed with the server's embedded key.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from tests.e2e.layouts import LAYOUTS, Layout, make_layout

ROOT = Path(__file__).resolve().parents[2]
SRC = os.pathsep.join([str(ROOT / "src"), str(ROOT / "shop" / "src")])
HEADERS: dict[str, str] = {}
"""Default headers of every e2e request (credentials go here)."""

BICAMERAL = [sys.executable, "-m", "bicameral.cli.main"]


def child_env() -> dict[str, str]:
    """Returns the environment for bicameral subprocesses: this checkout's code, no overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BICAMERAL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


def free_port() -> int:
    """Returns a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Runs ``bicameral *args`` and returns its exit code and output."""
    return subprocess.run(
        [*BICAMERAL, *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    """A ``bicameral up`` subprocess on one port and data dir, which tests may kill and restart."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"server-{self.port}-{self.starts}.log"

    def start(self, timeout: float = 30.0) -> None:
        """Starts the server and returns once ``/health`` answers 200."""
        self.starts += 1
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*BICAMERAL, "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"bicameral up exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", headers=HEADERS, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"bicameral up did not become healthy in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """Returns what the server printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """Kills the server with SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Stops the server gracefully (SIGINT), killing it if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def events_db(self) -> Path:
        return self.data_dir / "inventory" / "events.db"

    def head(self) -> int:
        """Returns the inventory log's last position, read from its SQLite file."""
        if not self.events_db().exists():
            return 0
        with contextlib.closing(sqlite3.connect(self.events_db(), timeout=30)) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0])


def admin_headers(data_dir: Path) -> dict[str, str]:
    """Returns the headers of an admin, with a token signed by ``data_dir``'s embedded key
    (what ``bicameral token issue --roles admin`` prints)."""
    token = issue_token(embedded_secret(data_dir), subject="e2e-admin", roles=["admin"])
    return {**HEADERS, "Authorization": f"Bearer {token}"}


def client_options(server: Server) -> dict[str, Any]:
    """Returns the options of every e2e HTTP client of ``server``: it acts as an admin."""
    return {"base_url": server.url, "headers": admin_headers(server.data_dir), "timeout": 30.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Returns a running shop on a fresh data dir, shared by the tests of one module."""
    running = Server(tmp_path_factory.mktemp("shop") / "data")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """Returns an HTTP client of the module's server."""
    with httpx.Client(**client_options(server)) as http:
        yield http


@pytest.fixture(params=LAYOUTS)
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Layout]:
    """Each multi-process layout (embedded SQLite files; PostgreSQL, Redis and NATS servers)."""
    made = make_layout(request.param, tmp_path)
    yield made
    made.cleanup()
