"""``bicameral demo load``: finds a demo by entry point or path, and exits 1 when it fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bicameral import ConfigurationError
from bicameral.cli.demo import find_demo
from bicameral.cli.main import app
from bicameral.runtime.auth import verifier_for
from bicameral.runtime.settings import Settings

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
