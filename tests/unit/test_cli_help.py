"""The command line says what it is and what each option defaults to."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import click
import pytest
import typer.main
from typer.testing import CliRunner

from bicameral.cli.main import app


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    yield " ".join(("bicameral", *path)), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


EVERY = list(commands(typer.main.get_command(app)))


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"bicameral {version('bicameral')}\n"


@pytest.mark.parametrize(("path", "command"), EVERY, ids=[p for p, _ in EVERY])
def test_every_option_shows_its_default(path: str, command: Any) -> None:
    context = click.Context(command, info_name=path)
    for param in command.params:
        if param.param_type_name != "option" or param.required or param.name == "version":
            continue
        if getattr(param, "hidden", False):  # internal (up's worker process), not for users
            continue
        record = param.get_help_record(context)
        assert record is not None, f"{path} {param.name} has no help"
        assert "default: " in record[1], f"{path} --{param.name}: {record[1]!r}"


def test_every_command_has_help() -> None:
    for path, command in EVERY:
        result = CliRunner().invoke(app, [*path.split()[1:], "--help"])
        assert result.exit_code == 0, path
        assert command.help or command.short_help, path
