"""The ``bicameral`` command line next to a running shop: the log, projection status, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import sqlite3
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from bicameral.testing import require_server
from tests.e2e.conftest import BICAMERAL, Server, child_env, cli, free_port

LINE_FIELDS = ("date", "time", "service", "position", "type", "stream")


@pytest.fixture(scope="module")
def skus(client: httpx.Client) -> list[str]:
    """Registers three products and receives stock for the first; returns their skus."""
    made = [f"cli-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for sku in made:
        body = {"sku": sku, "name": "Thing", "price_cents": 5}
        assert client.post("/inventory/commands/RegisterProduct", json=body).is_success
    stock = {"sku": made[0], "quantity": 4}
    response = client.post("/inventory/commands/ReceiveStock", json=stock)
    token = response.json()["consistency_token"]
    caught_up = client.get(
        "/inventory/queries/ListProducts", headers={"X-Consistency-Token": token}
    )
    assert caught_up.is_success
    return made


def stored(server: Server) -> list[tuple[int, str, str, str]]:
    """Returns (position, type, stream, principal subject) of each event in the SQLite log."""
    with contextlib.closing(sqlite3.connect(server.events_db())) as conn:
        rows = conn.execute(
            "SELECT position, type, stream_id, metadata FROM events ORDER BY position"
        )
        return [(p, t, s, json.loads(m)["principal"]["subject"]) for p, t, s, m in rows]


def parse(line: str) -> dict[str, str]:
    parts = line.split(maxsplit=len(LINE_FIELDS))
    return dict(zip((*LINE_FIELDS, "actor"), parts, strict=True))


def test_events_tail_prints_the_newest_events_oldest_first(server: Server, skus: list[str]) -> None:
    result = cli("events", "tail", "--data-dir", str(server.data_dir), "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = [parse(line) for line in result.stdout.splitlines()]
    expected = stored(server)[-3:]
    assert [(int(f["position"]), f["type"], f["stream"], f["service"]) for f in lines] == [
        (p, t, s, "inventory") for p, t, s, _ in expected
    ]
    for fields, (_, _, _, subject) in zip(lines, expected, strict=True):
        assert fields["actor"].startswith(subject or "-")
    assert lines[-1]["type"] == "inventory.StockReceived.v1"
    assert lines[-1]["stream"] == f"product-{skus[0]}"


def test_events_tail_of_one_service_shows_the_whole_short_log(
    server: Server, skus: list[str]
) -> None:
    result = cli("events", "tail", "--service", "inventory", "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    positions = [int(parse(line)["position"]) for line in result.stdout.splitlines()]
    assert positions == [p for p, *_ in stored(server)][-20:]


def test_projections_status_shows_the_checkpoint_at_the_head(
    server: Server, skus: list[str]
) -> None:
    result = cli("projections", "status", "--partitions", "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "service",
        "checkpoint",
        "position",
        "head",
        "lag_events",
        "lag_seconds",
        "parked",
        "owner",
    ]
    whole, *partitions = [r.split() for r in rows if r.split()[0] == "inventory"]
    head = server.head()
    assert whole[:5] == ["inventory", "products.v1:inventory", str(head), str(head), "0"]
    assert float(whole[5]) == 0.0
    assert whole[6] == "0"  # nothing parked
    assert whole[7] != "-"  # the workers holding its partitions
    assert [r[1] for r in partitions] == [f"products.v1:inventory#p{i}" for i in range(8)]
    for row in partitions:
        assert row[2:5] == [str(head), str(head), "0"]
        assert row[6] == "0"
        assert row[7] != "-"  # the worker holding the partition


def test_status_shows_one_row_per_consumer_with_its_owner(server: Server, skus: list[str]) -> None:
    result = cli("status", "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    workers = [row[1] for row in rows if row[0] == "inventory"]
    assert workers == ["products.v1:inventory", "relay", "reactions:orders"]
    assert {row[0] for row in rows} == {"inventory", "orders", "payments"}
    owners = {row[7] for row in rows if row[1] in ("relay", "reactions:orders")}
    assert "-" not in owners, result.stdout  # bicameral up holds every lease
    assert len(owners) == 1


def test_status_with_partitions_adds_a_row_per_partition(server: Server, skus: list[str]) -> None:
    result = cli("status", "--partitions", "--data-dir", str(server.data_dir))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    workers = [row[1] for row in rows if row[0] == "inventory"]
    partitions = [f"products.v1:inventory#p{i}" for i in range(8)]
    assert workers == ["products.v1:inventory", *partitions, "relay", "reactions:orders"]


def test_events_tail_filters_by_stream_type_and_principal(server: Server, skus: list[str]) -> None:
    data = ["--data-dir", str(server.data_dir)]
    result = cli("events", "tail", "--stream", f"product-{skus[0]}", *data)
    assert result.returncode == 0, result.stderr
    types = [parse(line)["type"] for line in result.stdout.splitlines()]
    assert types == ["inventory.ProductRegistered.v1", "inventory.StockReceived.v1"]
    result = cli("events", "tail", "--type", "StockReceived", "--limit", "1", *data)
    assert [parse(line)["stream"] for line in result.stdout.splitlines()] == [f"product-{skus[0]}"]
    result = cli("events", "tail", "--principal", "e2e-admin", "--limit", "500", *data)
    actors = {parse(line)["actor"].split("[")[0] for line in result.stdout.splitlines()}
    assert actors == {"e2e-admin"}
    result = cli("events", "tail", "--principal", "nobody-at-all", *data)
    assert (result.returncode, result.stdout) == (0, "")


def test_events_tail_limits_lines_in_all_and_orders_them_by_time(
    server: Server, skus: list[str], client: httpx.Client
) -> None:
    for amount in (100, 200):
        body = {"customer_id": f"cli-{uuid.uuid4().hex[:6]}", "amount_cents": amount}
        assert client.post("/payments/commands/DepositFunds", json=body).is_success
    result = cli("events", "tail", "--limit", "5", "--data-dir", str(server.data_dir))
    lines = [parse(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5
    assert [line["service"] for line in lines][-2:] == ["payments", "payments"]
    assert "inventory" in {line["service"] for line in lines}
    stamps = [f"{line['date']} {line['time']}" for line in lines]
    assert stamps == sorted(stamps)


def test_events_tail_follow_prints_new_matching_events(
    server: Server, skus: list[str], client: httpx.Client
) -> None:
    args = ["events", "tail", "--follow", "--limit", "0", "--type", "StockReceived"]
    follower = subprocess.Popen(
        [*BICAMERAL, *args, "--data-dir", str(server.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        text=True,
    )
    try:
        sku, line = skus[1], ""
        assert follower.stdout is not None
        for _ in range(60):  # until the follower has started reading (it prints nothing before)
            assert follower.poll() is None, follower.stderr and follower.stderr.read()
            assert client.post(
                "/inventory/commands/ReceiveStock", json={"sku": sku, "quantity": 1}
            ).is_success
            if select.select([follower.stdout], [], [], 1.0)[0]:
                line = follower.stdout.readline()
                break
        fields = parse(line)
        assert (fields["type"], fields["stream"]) == (
            "inventory.StockReceived.v1",
            f"product-{sku}",
        )
    finally:
        follower.kill()
        follower.wait(10)


def test_a_negative_limit_is_one_error_line(server: Server) -> None:
    result = cli("events", "tail", "--limit", "-1", "--data-dir", str(server.data_dir))
    assert_one_line_error(result, "--limit")


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result
    err = result.stderr
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bicameral: error: ")
    for word in words:
        assert word in lines[0]


def test_an_unknown_data_dir_is_one_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    for command in (["events", "tail"], ["projections", "status"], ["status"]):
        assert_one_line_error(cli(*command, "--data-dir", str(missing)), str(missing))
    assert not missing.exists(), "looking must not create the data dir"


def test_an_unknown_service_is_one_error_line(server: Server) -> None:
    result = cli("events", "tail", "--service", "nope", "--data-dir", str(server.data_dir))
    assert_one_line_error(result, "nope")


def test_a_missing_config_file_is_one_error_line(tmp_path: Path) -> None:
    assert_one_line_error(
        cli("projections", "status", "--config", str(tmp_path / "x.toml")), "x.toml"
    )


def test_a_bad_config_value_is_one_error_line(tmp_path: Path) -> None:
    config = tmp_path / "bicameral.toml"
    config.write_text('port = "eighty"\n')
    assert_one_line_error(cli("up", "--config", str(config)), "port")


def test_serving_on_a_port_in_use_is_one_error_line(server: Server, tmp_path: Path) -> None:
    result = cli("up", "--port", str(server.port), "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(result, str(server.port))


def test_an_unknown_app_is_one_error_line(tmp_path: Path) -> None:
    result = cli("up", "--app", "no_such_module:services", "--data-dir", str(tmp_path))
    assert_one_line_error(result, "no_such_module")


def test_a_worker_on_a_metrics_port_in_use_is_one_error_line(
    server: Server, tmp_path: Path
) -> None:
    args = ["serve", "--service", "inventory", "--role", "relay", "--data-dir", str(tmp_path)]
    assert_one_line_error(cli(*args, "--metrics-port", str(server.port)), str(server.port))
    assert_one_line_error(cli(*args, "--metrics-port", "70000"), "--metrics-port")


def test_a_missing_event_store_is_one_error_line_and_stays_missing(tmp_path: Path) -> None:
    config = tmp_path / "bicameral.toml"
    config.write_text('events_url = "sqlite:///{data_dir}/{service}/log.db"\n')
    data = tmp_path / "data"
    for command in (
        ["up", "--port", str(free_port())],
        ["serve", "--service", "orders", "--role", "projector"],
        ["serve", "--service", "orders", "--role", "command-api", "--port", str(free_port())],
    ):
        result = cli(*command, "--config", str(config), "--data-dir", str(data))
        assert_one_line_error(result, "log.db does not exist", "?create_database=true")
    assert not list(data.rglob("log.db"))


def test_a_missing_postgres_database_is_one_error_line_and_stays_missing(tmp_path: Path) -> None:
    require_server("postgresql")
    from bicameral.drivers.postgres import PostgresUrl, connect
    from bicameral.testing.postgres import SERVER_URL

    name = f"bicameral_missing_{uuid.uuid4().hex[:12]}"
    config = tmp_path / "bicameral.toml"
    config.write_text(f'events_url = "{SERVER_URL}/{name}"\n')
    data = str(tmp_path / "data")
    result = cli("up", "--port", str(free_port()), "--config", str(config), "--data-dir", data)
    assert_one_line_error(result, f"database {name} at 127.0.0.1:5432 does not exist")

    async def exists() -> bool:
        conn = await connect(PostgresUrl(f"{SERVER_URL}/postgres"))
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
        finally:
            await conn.close()

    assert not asyncio.run(exists())


def test_demo_load_with_a_token_the_shop_refuses_says_so_in_one_line(server: Server) -> None:
    result = cli("demo", "load", "--url", server.url, "--token", "not-a-token", "--orders", "5")
    assert result.returncode == 1
    assert result.stdout.strip() == ""
    assert result.stderr.count("\n") == 1
    assert "answered 401 to POST /inventory/commands/RegisterProduct" in result.stderr


def test_demo_load_without_a_key_says_so_and_makes_none(tmp_path: Path) -> None:
    empty = tmp_path / "elsewhere"
    result = cli("demo", "load", "--data-dir", str(empty), "--orders", "5")
    assert result.returncode == 1
    assert "no signing key at" in result.stderr
    assert not empty.exists()
