"""``bicameral demo load``: finds a demo by entry point or path, and exits 1 when it fails."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from bicameral import ConfigurationError
from bicameral.cli.demo import find_demo
from bicameral.cli.main import app

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
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls == [{"url": "http://h:1", "orders": 7, "concurrency": 3}]


def test_demo_load_exits_1_when_the_demo_fails() -> None:
    result = CliRunner().invoke(app, ["demo", "load", "--demo", f"{__name__}:failing"])
    assert result.exit_code == 1


def test_an_unknown_demo_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["demo", "load", "--demo", "no.such:thing"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    with pytest.raises(ConfigurationError):
        find_demo("no.such:thing")
