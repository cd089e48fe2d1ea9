"""PostgreSQL identifiers and URL options of the postgres adapters (no server needed)."""

from __future__ import annotations

import pytest

from bicameral.drivers.postgres import PostgresUrl, quoted
from bicameral.errors import ConfigurationError
from bicameral.readstore.postgres import _table


def test_long_collection_names_get_distinct_tables_within_the_limit() -> None:
    a = _table("x" * 70 + "_a")
    b = _table("x" * 70 + "_b")
    assert a != b
    assert len(a.strip('"').encode()) <= 63


def test_short_collection_names_keep_their_name() -> None:
    assert _table("orders_v1_items") == '"rm_orders_v1_items"'


def test_quoted_doubles_embedded_quotes() -> None:
    assert quoted('a"b') == '"a""b"'


def test_the_create_database_option_is_read_and_kept_out_of_the_dsn() -> None:
    url = PostgresUrl("postgresql://u@h:5432/db_x?create_database=false&sslmode=disable")
    assert not url.create_database
    assert url.dsn == "postgresql://u@h:5432/db_x?sslmode=disable"
    assert url.database == "db_x"
    assert url.maintenance_dsn() == "postgresql://u@h:5432/postgres?sslmode=disable"


def test_a_database_is_created_only_when_the_url_says_so() -> None:
    assert not PostgresUrl("postgres://u@h/db").create_database
    assert PostgresUrl("postgres://u@h/db?create_database=true").create_database
    assert PostgresUrl("postgres://u@h/db?create_database=true").dsn == "postgres://u@h/db"


def test_a_create_database_value_other_than_true_or_false_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="create_database must be true or false"):
        PostgresUrl("postgres://u@h/db?create_database=maybe")


def test_messages_name_the_database_and_server_but_no_credentials() -> None:
    assert PostgresUrl("postgresql://u:secret@db.internal:6543/x").where == "x at db.internal:6543"


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        PostgresUrl("mysql://u@h/db")


def test_the_pool_size_option_is_read_and_kept_out_of_the_dsn() -> None:
    url = PostgresUrl("postgresql://u@h:5432/db?pool_size=3&application_name=x")
    assert url.pool_size == 3
    assert "pool_size" not in url.dsn
    assert "application_name=x" in url.dsn
    assert PostgresUrl("postgresql://u@h/db").pool_size is None
    for bad in ("0", "many"):
        with pytest.raises(ConfigurationError):
            PostgresUrl(f"postgresql://u@h/db?pool_size={bad}")
