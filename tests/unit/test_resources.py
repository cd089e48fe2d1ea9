"""SQL and Lua files shipped beside their adapters: found, split into schema steps, packaged."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from bicameral.drivers.resources import resource, schema_steps, split_steps

SRC = Path(__file__).resolve().parents[2] / "src"
SHIPPED = sorted(
    path.relative_to(SRC) for ext in ("sql", "lua") for path in SRC.rglob(f"bicameral/**/*.{ext}")
)


def test_the_postgres_event_store_schema_starts_with_the_log_and_the_append_function() -> None:
    step, snapshots = schema_steps("bicameral.eventstore", "postgres.sql")
    assert "CREATE TABLE IF NOT EXISTS snapshots" in snapshots
    assert "CREATE TABLE IF NOT EXISTS events" in step
    assert step.count("$fn$") == 2, "the function body is whole"
    assert step.rstrip().endswith("$fn$;")


def test_the_postgres_read_store_schema_counts_its_steps() -> None:
    first, parked, notices = schema_steps("bicameral.readstore", "postgres.sql")
    assert "projection_checkpoints" in first
    assert "leases" in first
    assert "parked_sequences" in parked
    assert "pg_notify('bicameral_commits'" in notices


@pytest.mark.parametrize(
    "name", ["commit", "find", "acquire", "release", "leases", "unpark", "fail", "skip"]
)
def test_each_redis_script_ships_beside_the_read_store(name: str) -> None:
    script = resource("bicameral.readstore", f"redis_{name}.lua")
    assert "redis.call" in script


def test_a_resource_is_read_once() -> None:
    assert resource("bicameral.eventstore", "sqlite.sql") is resource(
        "bicameral.eventstore", "sqlite.sql"
    )


def test_steps_split_at_version_lines_in_order() -> None:
    text = "-- about\n-- version 1: a\nCREATE a;\n-- a comment\n-- version 2\nCREATE b;\n"
    assert split_steps(text) == ("CREATE a;\n-- a comment\n", "CREATE b;\n")


@pytest.mark.parametrize(
    "text", ["CREATE a;", "-- version 2\nCREATE a;", "-- version 1\n-- version 1\n"]
)
def test_steps_that_do_not_count_up_from_one_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="count up from 1"):
        split_steps(text, "x.sql")


def test_every_sql_and_lua_file_is_package_data() -> None:
    data = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]
    assert SHIPPED
    for path in SHIPPED:
        package = ".".join(path.parent.parts)
        assert any(fnmatch(path.name, p) for p in patterns.get(package, [])), path
