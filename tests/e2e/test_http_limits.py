"""The HTTP edge against a real ``bicameral up`` process: the bad inputs of issue 11 are refused
with their 4xx before any work is done, and ``/health`` keeps answering while they are sent.

Requests are written on raw sockets, so the server sees them byte for byte as an attacker would
send them (no client library shortens, rejects or buffers them).
"""

from __future__ import annotations

import itertools
import socket
import string
import threading
import time
from collections.abc import Callable

import httpx
import orjson
import pytest

from tests.e2e.conftest import Server, admin_headers

MIB = 1 << 20


def many_parameters(count: int = 15_000) -> str:
    """Returns a query string of ``count`` distinct parameters (58 KB for 15,000)."""
    alphabet = string.ascii_lowercase + string.digits
    names = ("".join(p) for n in (1, 2, 3) for p in itertools.product(alphabet, repeat=n))
    return "&".join(itertools.islice(names, count))


def head(server: Server, method: str, path: str, *lines: str) -> bytes:
    """Returns a request head for ``server``, with ``lines`` as extra header lines."""
    text = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    return (text + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode("latin-1")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Returns the status, headers and body of the one response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def exchange(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends ``request`` on a new connection and returns the response."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        return read_response(sock)


def problem(response: tuple[int, dict[str, str], bytes], status: int) -> dict[str, object]:
    got, headers, body = response
    assert got == status, body
    assert headers["content-type"] == "application/problem+json"
    assert headers["x-content-type-options"] == "nosniff"
    document: dict[str, object] = orjson.loads(body)
    assert document["status"] == status
    return document


def bearer(server: Server) -> str:
    return f"Authorization: {admin_headers(server.data_dir)['Authorization']}"


def test_a_query_string_of_15000_parameters_is_a_400(server: Server) -> None:
    query = many_parameters()
    assert 50_000 < len(query) < 60_000
    request = head(server, "GET", f"/inventory/queries/GetProduct?{query}")
    document = problem(exchange(server, request), 400)
    assert document["errors"] == [
        {"loc": ["query"], "msg": "at most 100 parameters", "type": "too_long"}
    ]


def test_a_bearer_token_over_8_kib_is_a_401(server: Server) -> None:
    request = head(
        server, "GET", "/inventory/queries/ListProducts", "Authorization: Bearer " + "a" * 9000
    )
    document = problem(exchange(server, request), 401)
    assert "8 KiB" in str(document["detail"])


def unfinished_head(server: Server, header: str) -> tuple[int, dict[str, str], bytes]:
    """Sends a head whose ``header`` goes on for 100 KiB with no end; returns the answer."""
    start = head(server, "GET", "/inventory/queries/ListProducts")[:-2] + f"{header}: ".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(start + b"a" * (100 * 1024))
        return read_response(sock)


def test_a_30_mb_token_is_a_401_after_the_first_64_kib(server: Server) -> None:
    """The server never waits for the rest of an oversized head; the answer names the token."""
    got = unfinished_head(server, "Authorization: Bearer")
    document = problem(got, 401)
    assert "8 KiB" in str(document["detail"])
    assert got[1]["www-authenticate"] == "Bearer"
    whole = head(server, "GET", "/health", "Authorization: Bearer " + "a" * 100_000)
    assert exchange(server, whole)[0] == 401  # the same when the head comes whole


def test_many_headers_over_64_kib_are_a_431(server: Server) -> None:
    lines = [f"X-Filler-{i}: {'v' * 60}" for i in range(1500)]
    document = problem(exchange(server, head(server, "GET", "/health", *lines)), 431)
    assert "65536 bytes" in str(document["detail"])
    problem(unfinished_head(server, "X-Filler"), 431)


def test_a_request_line_over_64_kib_is_a_414(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /inventory/queries/GetProduct?sku=" + b"s" * (100 * 1024))
        problem(read_response(sock), 414)


def test_a_20_mb_body_is_a_413_without_being_read(server: Server) -> None:
    request = head(
        server,
        "POST",
        "/inventory/commands/RegisterProduct",
        bearer(server),
        "Content-Type: application/json",
        f"Content-Length: {20 * MIB}",
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)  # not one byte of the body
        response = read_response(sock)
        assert sock.recv(1) == b""  # and the server closed the connection
    document = problem(response, 413)
    assert response[1]["connection"] == "close"
    assert "1048576 bytes" in str(document["detail"])


def test_a_chunked_body_is_a_413_once_past_1_mib(server: Server) -> None:
    request = head(
        server,
        "POST",
        "/inventory/commands/RegisterProduct",
        bearer(server),
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    )
    chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + chunk * 17)  # 1.06 MiB, and no last chunk
        problem(read_response(sock), 413)


def test_a_form_post_is_a_415(server: Server) -> None:
    body = b"sku=p&name=n&price_cents=1"
    request = head(
        server,
        "POST",
        "/inventory/commands/RegisterProduct",
        bearer(server),
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body)}",
    )
    problem(exchange(server, request + body), 415)


@pytest.mark.parametrize("name", ["Idempotency-Key", "X-Correlation-Id"])
def test_a_201_character_or_5_mb_key_is_a_400(server: Server, name: str) -> None:
    request = head(server, "GET", "/inventory/queries/ListProducts", f"{name}: {'k' * 201}")
    document = problem(exchange(server, request), 400)
    assert document["errors"] == [
        {
            "loc": ["header", name],
            "msg": "1 to 200 printable ASCII characters",
            "type": "value_error",
        }
    ]
    assert problem(unfinished_head(server, name), 400)["errors"] == document["errors"]


Attack = Callable[[socket.socket], None]


def attacker(
    server: Server, stop: threading.Event, started: threading.Event, attack: Attack
) -> None:
    """Repeats ``attack`` on new connections until ``stop``; a refusal ends one attempt."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                started.set()
                attack(sock)
        except OSError:
            pass  # the server refused and closed the connection mid-way, as it should
        time.sleep(0.01)


def test_health_keeps_answering_while_bad_requests_are_sent(server: Server) -> None:
    query = head(server, "GET", f"/inventory/queries/GetProduct?{many_parameters()}")
    token_head = (
        head(server, "GET", "/inventory/queries/ListProducts")[:-2] + b"Authorization: Bearer "
    )
    body_head = head(
        server,
        "POST",
        "/inventory/commands/RegisterProduct",
        bearer(server),
        "Content-Type: application/json",
        f"Content-Length: {20 * MIB}",
    )
    megabyte = b"a" * MIB

    def send_query(sock: socket.socket) -> None:
        sock.sendall(query)
        read_response(sock)

    def send_token(sock: socket.socket) -> None:  # 30 MB of header
        sock.sendall(token_head)
        for _ in range(30):
            sock.sendall(megabyte)

    def send_body(sock: socket.socket) -> None:  # 20 MB of body
        sock.sendall(body_head)
        for _ in range(20):
            sock.sendall(megabyte)

    stop = threading.Event()
    attacks = [send_query, send_token, send_body]
    started = [threading.Event() for _ in attacks]
    threads = [
        threading.Thread(target=attacker, args=(server, stop, flag, attack), daemon=True)
        for flag, attack in zip(started, attacks, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        for flag in started:
            assert flag.wait(10)
        slowest = 0.0
        with httpx.Client(base_url=server.url, timeout=5) as http:
            for _ in range(30):
                begun = time.monotonic()
                assert http.get("/health").status_code == 200
                slowest = max(slowest, time.monotonic() - begun)
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert slowest < 0.5, f"/health took {slowest:.2f} s"
