"""``bicameral`` subprocesses for the end-to-end tests: started, killed and restarted by id."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

import bicameral

SRC = str(Path(bicameral.__file__).resolve().parents[1])


def free_port() -> int:
    """Returns a TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """One ``bicameral`` command in a subprocess, on a data folder that outlives it."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Starts the process; with a port, returns once it answers /health."""
        self.spawn()
        if self.port:
            await self.healthy()

    def spawn(self) -> None:
        """Starts the process."""
        command = [sys.executable, "-c", "from bicameral.cli.main import main; main()", *self.args]
        command += ["--data-dir", str(self.data_dir), "--app", "shop.app:services"]
        if self.port:
            command += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            env=os.environ | {"PYTHONPATH": SRC},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def healthy(self) -> None:
        """Returns once the process answers /health."""
        assert self.process is not None
        async with httpx.AsyncClient(base_url=self.url) as http:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        return
                assert self.process.poll() is None, f"{self.args} exited"
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.args} did not become healthy")

    def kill(self) -> None:
        """Kills the process with SIGKILL."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Stops the process if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Router(httpx.AsyncBaseTransport):
    """Sends each request to the port serving what its path names.

    ``ports`` maps ``service/kind`` (``orders/commands``, ``orders/queries``) or a service's
    name to a local port; the longer key wins.
    """

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        service, kind = [*request.url.path.split("/"), "", ""][1:3]
        port = self.ports.get(f"{service}/{kind}") or self.ports[service]
        request.url = request.url.copy_with(host="127.0.0.1", port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
