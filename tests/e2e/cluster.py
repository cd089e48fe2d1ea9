"""Runs bicameral roles, nginx and Prometheus as separate OS processes for end-to-end tests.

Every process starts in its own session, so ``stop`` can kill it with everything it spawned;
its output goes to a log file in the cluster's folder, shown when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PROMETHEUS_CONF = ROOT / "deploy" / "prometheus.yml"
_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def free_port() -> int:
    """Returns a TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str | None:
    """Returns the path of the nginx executable, or None when it is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def render_nginx(template: str, *, port: int, upstreams: dict[str, list[int]], home: Path) -> str:
    """Returns deploy/nginx.conf listening on ``port``, its upstreams on the given local ports.

    ``upstreams`` maps an upstream name (``inventory_commands``) to its copies' ports; each must
    be in the template. The ``api`` upstream, unless given, is every port given. Logs and
    temporary files go under ``home``.
    """
    if "api" not in upstreams:
        upstreams = {**upstreams, "api": sorted({p for ports in upstreams.values() for p in ports})}
    found: set[str] = set()

    def upstream(match: re.Match[str]) -> str:
        name, body = match.group(1), match.group(2)
        if name not in upstreams:
            return match.group(0)
        found.add(name)
        lines = body.splitlines()
        servers = [line for line in lines if line.strip().startswith("server ")]
        options = servers[0].strip().rstrip(";").split()[2:] if servers else []
        kept = [line for line in lines if line not in servers]
        new = [f"        server 127.0.0.1:{p} {' '.join(options)};" for p in upstreams[name]]
        return f"upstream {name} {{\n" + "\n".join(new + kept) + "\n    }"

    text = re.sub(r"upstream (\w+) \{\n(.*?)\n    \}", upstream, template, flags=re.S)
    missing = set(upstreams) - found
    assert not missing, f"deploy/nginx.conf has no upstream {sorted(missing)}"
    text, listens = re.subn(r"listen \d+;", f"listen 127.0.0.1:{port};", text)
    assert listens == 1, "deploy/nginx.conf should listen on one port"
    text = re.sub(r"access_log [^;]+;", f"access_log {home}/access.log;", text)
    temp = "".join(f"    {d}_temp_path {home}/{d};\n" for d in _TEMP_DIRS)
    return text.replace("http {\n", "http {\n" + temp, 1)


def prometheus_binary() -> str | None:
    """Returns the path of the prometheus executable, or None when it is not installed."""
    return shutil.which("prometheus") or next(
        (p for p in ("/usr/bin/prometheus", "/usr/local/bin/prometheus") if os.access(p, os.X_OK)),
        None,
    )


def render_prometheus(
    template: str,
    *,
    targets: list[tuple[int, dict[str, str]]],
    token_file: Path,
    interval: str,
) -> str:
    """Returns deploy/prometheus.yml scraping ``targets`` (local ports and their labels) every
    ``interval`` with the token in ``token_file``, its rules from deploy/alerts.yml."""
    import yaml

    config = yaml.safe_load(template)
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(PROMETHEUS_CONF.with_name(name)) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [
        {"targets": [f"127.0.0.1:{port}"], "labels": labels} for port, labels in targets
    ]
    return str(yaml.safe_dump(config))


@dataclass
class Proc:
    """One started process, and how to start it again."""

    name: str
    args: list[str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    """The service and role of a bicameral process, as Prometheus labels its target."""

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Cluster:
    """The processes of one test: bicameral roles of each service, and nginx in front."""

    home: Path
    config: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)

    def _spawn(self, proc: Proc) -> Proc:
        with proc.log.open("ab") as out:
            proc.popen = subprocess.Popen(
                proc.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )
        self.procs[proc.name] = proc
        return proc

    def serve(
        self, name: str, service: str, role: str | list[str], port: int | None = None
    ) -> Proc:
        """Starts ``bicameral serve`` for one role (or several) of one service; ``port`` is its
        API port, or for worker roles only (projector, relay, reactions) its metrics port."""
        roles = [role] if isinstance(role, str) else role
        args = [sys.executable, "-m", "bicameral.cli.main", "serve", "--config", str(self.config)]
        args += ["--service", service, *(arg for r in roles for arg in ("--role", r))]
        if port is not None:
            api = {"command-api", "query-api"} & set(roles)
            args += ["--port" if api else "--metrics-port", str(port)]
        proc = Proc(name, args, self.home / f"{name}.log", port)
        proc.labels = {"service": service, "role": ",".join(roles)}
        return self._spawn(proc)

    def up(self, name: str, port: int) -> Proc:
        """Starts ``bicameral up``: every service and role in one process."""
        args = [sys.executable, "-m", "bicameral.cli.main", "up", "--config", str(self.config)]
        args += ["--port", str(port)]
        return self._spawn(Proc(name, args, self.home / f"{name}.log", port))

    def cli(self, *args: str, timeout: float = 60) -> str:
        """Runs one ``bicameral`` command to its end; returns its output."""
        done = subprocess.run(
            [sys.executable, "-m", "bicameral.cli.main", *args, "--config", str(self.config)],
            capture_output=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def nginx(self, upstreams: dict[str, list[int]]) -> Proc:
        """Starts Debian's nginx in the foreground with deploy/nginx.conf on a spare port."""
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed (apt-get install nginx-light)"
        home = self.home / "nginx"
        for name in _TEMP_DIRS:
            (home / name).mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = home / "nginx.conf"
        conf.write_text(
            render_nginx(NGINX_CONF.read_text(), port=port, upstreams=upstreams, home=home)
        )
        directives = f"daemon off; master_process off; pid {home}/nginx.pid;"
        args = [binary, "-p", str(home), "-c", str(conf), "-e", str(home / "error.log")]
        tested = subprocess.run([*args, "-t"], capture_output=True, check=False)
        assert tested.returncode == 0, tested.stderr.decode()
        return self._spawn(Proc("nginx", [*args, "-g", directives], home / "out.log", port))

    def prometheus(self, token: str, interval: str = "1s") -> Proc:
        """Starts Debian's Prometheus scraping every bicameral process started so far, with
        deploy/prometheus.yml's job settings and alerts.yml, on a spare port."""
        binary = prometheus_binary()
        assert binary is not None, "prometheus is not installed (apt-get install prometheus)"
        home = self.home / "prometheus"
        home.mkdir(parents=True, exist_ok=True)
        (home / "bicameral.token").write_text(token)
        port = free_port()
        config = home / "prometheus.yml"
        config.write_text(
            render_prometheus(
                PROMETHEUS_CONF.read_text(),
                targets=[(p.port, p.labels) for p in self.procs.values() if p.labels and p.port],
                token_file=home / "bicameral.token",
                interval=interval,
            )
        )
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        return self._spawn(Proc("prometheus", args, home / "out.log", port))

    def kill(self, name: str) -> None:
        """Kills one process (SIGKILL), as a crash would."""
        proc = self.procs[name]
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            assert proc.popen is not None
            proc.popen.wait(10)

    def restart(self, name: str) -> Proc:
        """Starts a killed process again with the same arguments."""
        return self._spawn(self.procs[name])

    def stop(self) -> None:
        """Kills every process this cluster started, and waits for them."""
        for name in list(self.procs):
            self.kill(name)

    def dead(self) -> list[str]:
        """Returns the names of processes that exited on their own."""
        return [name for name, proc in self.procs.items() if not proc.alive()]

    def logs(self, limit: int = 40) -> str:
        """Returns the tail of every process's log."""
        parts = []
        for proc in self.procs.values():
            if proc.log.exists():
                tail = proc.log.read_text(errors="replace").splitlines()[-limit:]
                parts.append(f"--- {proc.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def wait_healthy(self, names: list[str], timeout: float = 60) -> None:
        """Returns once every named HTTP process answers /health with 200."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            name = pending[0]
            proc = self.procs[name]
            assert proc.alive(), f"{name} exited:\n{self.logs()}"
            try:
                ok = httpx.get(f"http://127.0.0.1:{proc.port}/health", timeout=1).status_code
            except httpx.HTTPError:
                ok = 0
            if ok == 200:
                pending.pop(0)
                continue
            assert time.monotonic() < deadline, f"{name} is not healthy:\n{self.logs()}"
            time.sleep(0.1)
