"""The server's bound on request heads: configured from ``[http]``, and an oversized head is
answered for what overflowed (sockets and a real server: tests/e2e/test_http_limits.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi import FastAPI

from bicameral.errors import ConfigurationError
from bicameral.http.server import head_refusal, server_config
from bicameral.runtime.settings import HttpSettings, Settings


def _status_and_problem(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    problem: dict[str, object] = orjson.loads(body)
    status = int(head.split()[1])
    assert problem["status"] == status
    return status, problem


@pytest.mark.parametrize(
    ("line", "length", "status"),
    [
        (None, 70_000, 414),
        (b"Authorization: Bearer eyJhbGciO", 30_000_000, 401),
        (b"authorization: bearer abc", 9_000, 401),
        (b"Idempotency-Key: kkkkkkkkkkkkkkk", 5_000_000, 400),
        (b"X-Correlation-Id: cccccccccccccc", 300, 400),
        (b"X-Filler: v", 100, 431),
        (b"Authorization: Bearer short", 100, 431),  # the token is not what overflowed
        (b"", 0, 431),
    ],
)
def test_an_oversized_head_is_answered_for_what_overflowed(
    line: bytes | None, length: int, status: int
) -> None:
    got, problem = _status_and_problem(head_refusal(line, length, 65536))
    assert got == status
    if status == 400:
        assert problem["errors"]
    if status == 401:
        assert "8 KiB" in str(problem["detail"])


def test_the_head_limit_comes_from_the_settings() -> None:
    settings = Settings.load(environ={}, port=8123, http=HttpSettings(max_header_bytes=32768))
    config = server_config(FastAPI(), settings)
    assert config.h11_max_incomplete_event_size == 32768
    assert (config.host, config.port) == ("127.0.0.1", 8123)
    assert getattr(config.http, "__name__", config.http) in ("BoundedHttpToolsProtocol", "h11")


def test_http_settings_are_read_from_the_environment_and_checked() -> None:
    settings = Settings.load(environ={"BICAMERAL_HTTP_MAX_BODY_BYTES": "2048"})
    assert settings.http.max_body_bytes == 2048
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        Settings.load(environ={"BICAMERAL_HTTP_MAX_BODY_BYTES": "lots"})
    with pytest.raises(ConfigurationError, match=r"max_body_bytes = .10.: .* 1024"):
        Settings.load(environ={"BICAMERAL_HTTP_MAX_BODY_BYTES": "10"})


def test_http_settings_come_from_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "bicameral.toml"
    config.write_text("[http]\nmax_body_bytes = 4096\nmax_header_bytes = 16384\n")
    settings = Settings.load(config=config, environ={})
    assert settings.http == HttpSettings(max_body_bytes=4096, max_header_bytes=16384)
    config.write_text("[http]\nmax_bytes = 4096\n")
    with pytest.raises(ConfigurationError, match="unknown"):
        Settings.load(config=config, environ={})
