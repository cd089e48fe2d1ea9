"""``bicameral demo load``: finds a demo by entry point or path, and exits 1 when it fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bicameral import ConfigurationError
from bicameral.cli.demo import default_url, find_demo
from bicameral.cli.main import app
from bicameral.runtime.auth import verifier_for
from bicameral.runtime.settings import Settings
from bicameral.security.keys import EMBEDDED_KEY_FILE, embedded_secret

calls: list[dict[str, Any]] = []


def passing(**options: Any) -> bool:
    calls.append(options)
    return True


async def failing(**options: Any) -> bool:
    return False


def test_demo_load_calls_the_demo_with_its_options() -> None:
    calls.clear()
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "load",
            "--orders",
            "7",
            "--concurrency",
            "3",
            "--url",
            "http://h:1/",
            "--demo",
            f"{__name__}:passing",
            "--token",
            "t0ken",
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls[0].pop("token") == "t0ken"
    assert calls == [{"url": "http://h:1", "orders": 7, "concurrency": 3}]


def test_demo_load_signs_an_admin_token_when_given_none(tmp_path: Path) -> None:
    calls.clear()
    embedded_secret(tmp_path)  # made by the server's first start
    result = CliRunner().invoke(
        app, ["demo", "load", "--data-dir", str(tmp_path), "--demo", f"{__name__}:passing"]
    )
    assert result.exit_code == 0, result.output
    settings = Settings.load(environ={}, data_dir=tmp_path)
    assert verifier_for(settings).verify(calls[0]["token"]).roles == {"admin"}


def test_demo_load_exits_1_when_the_demo_fails() -> None:
    result = CliRunner().invoke(
        app, ["demo", "load", "--demo", f"{__name__}:failing", "--token", "t0ken"]
    )
    assert result.exit_code == 1


def test_an_unknown_demo_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["demo", "load", "--demo", "no.such:thing"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    with pytest.raises(ConfigurationError):
        find_demo("no.such:thing")


def test_demo_load_without_a_key_says_where_it_looked_and_makes_none(tmp_path: Path) -> None:
    calls.clear()
    data_dir = tmp_path / "data"
    args = ["demo", "load", "--data-dir", str(data_dir), "--demo", f"{__name__}:passing"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert str((data_dir / EMBEDDED_KEY_FILE).absolute()) in result.stderr
    assert "bicameral up" in result.stderr
    assert not data_dir.exists()
    assert calls == []


@pytest.mark.parametrize(
    ("args", "env", "url"),
    [
        (
            ["--url", "http://given:1/"],
            {"BICAMERAL_URL": "http://env:2", "PORT": "3"},
            "http://given:1",
        ),
        ([], {"BICAMERAL_URL": "http://env:2", "PORT": "3"}, "http://env:2"),
        ([], {"PORT": "8123"}, "http://127.0.0.1:8123"),
        ([], {}, "http://127.0.0.1:8000"),
    ],
)
def test_demo_load_takes_its_url_from_the_flag_then_the_environment(
    args: list[str], env: dict[str, str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BICAMERAL_URL", "PORT"):
        monkeypatch.delenv(name, raising=False)
    calls.clear()
    command = ["demo", "load", "--demo", f"{__name__}:passing", "--token", "t", *args]
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 0, result.output
    assert calls[0]["url"] == url


def test_the_default_url_is_where_make_run_serves() -> None:
    assert default_url({}) == "http://127.0.0.1:8000"
    assert default_url({"PORT": "9000"}) == "http://127.0.0.1:9000"
