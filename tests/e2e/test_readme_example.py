"""The README's "Writing a service" example works as written: its code saved as a module, run
with the ``bicameral up --app`` line it gives, from that folder, answers its curl lines."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import child_env, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
PROGRAM = str(Path(sys.executable).parent / "bicameral")


@dataclass(frozen=True)
class Example:
    code: str
    module: str  # as the README's ``--app`` names it: module:attr
    shell: list[str]  # the shell block's commands, one per entry, continuations joined
    answers: list[str]  # the shell block's ``# {...}`` lines


def example() -> Example:
    text = README.read_text()
    section = text.split("## Writing a service", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    assert code, "the section has a python block"
    assert shell, "the section has a sh block"
    lines = shell.group(1).replace("\\\n", " ").splitlines()
    commands = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    answers = [line[1:].strip() for line in lines if line.startswith("# {")]
    up = next(c for c in commands if c.startswith("bicameral up"))
    return Example(code.group(1), shlex.split(up)[-1], commands, answers)


@contextlib.contextmanager
def up(cwd: Path, app: str) -> Iterator[str]:
    """Runs ``bicameral up --app app`` in ``cwd``; yields its URL once ``/health`` answers."""
    port = free_port()
    log = cwd / f"up-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [PROGRAM, "up", "--app", app, "--port", str(port)],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"bicameral up exited {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"bicameral up did not answer:\n{log.read_text()}")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def token(cwd: Path, command: str) -> str:
    """Runs the README's ``TOKEN=$(bicameral token issue ...)`` line in ``cwd``."""
    args = shlex.split(command.removeprefix("TOKEN=$(").removesuffix(")"))
    assert args[0] == "bicameral"
    done = subprocess.run(
        [PROGRAM, *args[1:]], cwd=cwd, capture_output=True, text=True, env=child_env(), check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def curl(url: str, command: str, bearer: str, consistency: str) -> httpx.Response:
    """Sends what one of the README's curl lines sends, to ``url`` instead of localhost:8000."""
    args = shlex.split(command)
    headers: dict[str, str] = {}
    body: str | None = None
    target = ""
    method = "GET"
    rest = iter(args[1:])
    for arg in rest:
        if arg == "-X":
            method = next(rest)
        elif arg == "-H":
            name, _, value = next(rest).partition(": ")
            headers[name] = value.replace("$TOKEN", bearer)
        elif arg == "-d":
            body = next(rest)
            method = "POST" if method == "GET" else method
        elif arg.startswith("localhost:8000"):
            target = arg.removeprefix("localhost:8000")
    if body is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what curl -d sends
    if "X-Consistency-Token" in headers:
        headers["X-Consistency-Token"] = consistency
    return httpx.request(method, url + target, headers=headers, content=body, timeout=30)


def run_example(cwd: Path, app: str, shown: Example) -> None:
    with up(cwd, app) as url:
        bearer = token(cwd, next(c for c in shown.shell if c.startswith("TOKEN=")))
        sent, asked = [c for c in shown.shell if c.startswith("curl")]
        done = curl(url, sent, bearer, "")
        assert done.status_code == 200, done.text
        consistency = done.json()["consistency_token"]
        assert done.headers["X-Consistency-Token"] == consistency
        got = curl(url, asked, bearer, consistency)
        assert got.status_code == 200, got.text
        assert got.json() == json.loads(shown.answers[-1])
        wrong = httpx.post(
            f"{url}/bank/commands/Deposit",
            json={"account": "a1", "amount_cents": "12"},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert wrong.status_code == 422
        assert wrong.json()["errors"][0]["loc"] == ["body", "amount_cents"]


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    shown = example()
    module, _, attr = shown.module.partition(":")
    assert attr == "bank"
    (tmp_path / f"{module}.py").write_text(shown.code)
    run_example(tmp_path, shown.module, shown)


def test_app_takes_a_path_to_a_file(tmp_path: Path) -> None:
    shown = example()
    module, _, attr = shown.module.partition(":")
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / f"{module}.py").write_text(shown.code)
    run_example(tmp_path, f"services/{module}.py:{attr}", shown)
