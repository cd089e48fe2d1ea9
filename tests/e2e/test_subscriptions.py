"""Live query subscriptions against real processes: ``bicameral up``, and a query-api process of
its own (``bicameral serve``) that hears the other process's commits through the SQLite read
store; the token's expiry ends a stream; refusals as the query routes answer them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest

from bicameral.security.keys import embedded_secret
from bicameral.security.tokens import issue_token
from tests.e2e.conftest import BICAMERAL, Server, child_env, free_port

pytestmark = pytest.mark.timeout(180)

WAIT = 30.0


class Events:
    """The events of one open ``text/event-stream`` response, read line by line."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def next(self) -> tuple[str, Any]:
        """Returns the next (event name, data), skipping heartbeats; StopIteration at the end."""
        fields: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if "event" in fields:
                    return fields["event"], orjson.loads(fields["data"])
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        raise StopIteration

    def until(self, test: Any) -> Any:
        """Returns the data of the first result passing ``test``."""
        while True:
            kind, data = self.next()
            if kind == "result" and test(data):
                return data


@contextlib.contextmanager
def subscribe(url: str, headers: dict[str, str] | None = None, **params: str) -> Iterator[Events]:
    with (
        httpx.Client(timeout=httpx.Timeout(WAIT)) as http,
        http.stream("GET", url, params=params, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Events(response)


def _command(client: httpx.Client, name: str, body: dict[str, Any]) -> None:
    done = client.post(f"/inventory/commands/{name}", json=body)
    assert done.status_code == 200, done.text


@pytest.fixture(scope="module")
def query_api(server: Server) -> Iterator[str]:
    """Returns the URL of a query-api process of inventory beside ``bicameral up``."""
    port = free_port()
    log = (server.data_dir.parent / "query-api.log").open("wb")
    process = subprocess.Popen(
        [
            *BICAMERAL,
            "serve",
            "--service",
            "inventory",
            "--role",
            "query-api",
            "--port",
            str(port),
            "--data-dir",
            str(server.data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert process.poll() is None, "the query-api process exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _registered(client: httpx.Client, sku: str) -> None:
    """Registers a product and waits until queries see it (else a subscription is a 404)."""
    _command(client, "RegisterProduct", {"sku": sku, "name": "Mug", "price_cents": 900})
    for _ in range(300):
        if client.get("/inventory/queries/GetProduct", params={"sku": sku}).is_success:
            return
        time.sleep(0.1)
    pytest.fail(f"{sku} never reached the read model")


def test_a_subscriber_sees_each_command_take_effect(server: Server, client: httpx.Client) -> None:
    _registered(client, "sub-mug")
    with subscribe(f"{server.url}/inventory/subscriptions/GetProduct", sku="sub-mug") as events:
        kind, first = events.next()
        assert (kind, first["on_hand"]) == ("result", 0)
        _command(client, "ReceiveStock", {"sku": "sub-mug", "quantity": 5})
        assert events.until(lambda d: d["on_hand"] != 0)["on_hand"] == 5
        _command(client, "ReceiveStock", {"sku": "sub-mug", "quantity": 2})
        assert events.until(lambda d: d["on_hand"] != 5)["on_hand"] == 7


def test_a_query_api_process_hears_the_commits_of_another_process(
    query_api: str, client: httpx.Client
) -> None:
    _registered(client, "sub-cup")
    with subscribe(f"{query_api}/inventory/subscriptions/GetProduct", sku="sub-cup") as events:
        assert events.next()[1]["on_hand"] == 0
        _command(client, "ReceiveStock", {"sku": "sub-cup", "quantity": 3})
        assert events.until(lambda d: d["on_hand"] != 0)["on_hand"] == 3


def test_the_stream_ends_when_the_token_expires(server: Server) -> None:
    token = issue_token(
        embedded_secret(server.data_dir),
        subject="e2e-staff",
        roles=["staff"],
        ttl=timedelta(seconds=3),
    )
    headers = {"Authorization": f"Bearer {token}"}
    with subscribe(f"{server.url}/inventory/subscriptions/ListProducts", headers) as events:
        assert events.next()[0] == "result"
        while (found := events.next())[0] == "result":
            pass
        assert found == ("expired", {"detail": "the bearer token has expired"})
        with pytest.raises(StopIteration):
            events.next()


def test_refusals_are_problems_as_for_the_query(server: Server) -> None:
    secret = embedded_secret(server.data_dir)
    staff = {"Authorization": f"Bearer {issue_token(secret, subject='s', roles=['staff'])}"}
    balance = f"{server.url}/payments/subscriptions/GetBalance?customer_id=alice"
    cases = [
        (balance, {}, 401),
        (balance, {"Authorization": "Bearer nonsense"}, 401),
        (balance, staff, 403),
        (f"{server.url}/inventory/subscriptions/NoSuchQuery", {}, 404),
        (f"{server.url}/inventory/subscriptions/GetProduct", {}, 422),
    ]
    for url, headers, status in cases:
        got = httpx.get(url, headers=headers, timeout=WAIT)
        assert got.status_code == status, (url, got.text)
        assert got.headers["content-type"] == "application/problem+json"
    missing = httpx.get(f"{server.url}/inventory/subscriptions/GetProduct", timeout=WAIT)
    assert missing.json()["errors"][0]["loc"] == ["query", "sku"]


def test_a_server_with_open_subscriptions_stops_promptly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    running = Server(tmp_path_factory.mktemp("stopping") / "data")
    running.start()
    try:
        with subscribe(f"{running.url}/inventory/subscriptions/ListProducts") as events:
            assert events.next()[0] == "result"
            assert running.process is not None
            running.process.send_signal(signal.SIGINT)
            running.process.wait(15)  # uvicorn would wait for the stream for ever
            with pytest.raises((StopIteration, httpx.HTTPError)):
                events.next()
    finally:
        running.stop()
