"""Keys: the embedded secret is made once and kept private; JWKS files rotate."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bicameral.errors import AuthenticationError, ConfigurationError
from bicameral.security.keys import (
    EMBEDDED_KEY_FILE,
    EmbeddedKeySet,
    JwksFileKeySet,
    embedded_secret,
)
from tests.jwks import SigningKey, write_jwks

ASYMMETRIC = frozenset({"RS256", "EdDSA"})


def test_the_embedded_secret_is_made_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    secret = embedded_secret(tmp_path / "data")
    path = tmp_path / "data" / EMBEDDED_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) >= 32


def test_the_embedded_secret_is_kept_across_starts(tmp_path: Path) -> None:
    assert embedded_secret(tmp_path) == embedded_secret(tmp_path)


def test_each_data_dir_gets_its_own_secret(tmp_path: Path) -> None:
    assert embedded_secret(tmp_path / "a") != embedded_secret(tmp_path / "b")


def test_an_embedded_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    embedded_secret(tmp_path)
    (tmp_path / EMBEDDED_KEY_FILE).chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        embedded_secret(tmp_path)


def test_the_embedded_key_set_only_serves_hs256() -> None:
    keys = EmbeddedKeySet(b"k" * 32)
    assert keys.key("embedded", "HS256").key == b"k" * 32
    assert keys.key(None, "HS256").algorithm == "HS256"
    with pytest.raises(AuthenticationError):
        keys.key("embedded", "RS256")


def test_a_jwks_key_is_chosen_by_kid(tmp_path: Path) -> None:
    one, two = SigningKey.rsa("one"), SigningKey.ed25519("two")
    write_jwks(tmp_path / "jwks.json", one, two)
    keys = JwksFileKeySet(tmp_path / "jwks.json", ASYMMETRIC)
    assert keys.key("one", "RS256").algorithm == "RS256"
    assert keys.key("two", "EdDSA").algorithm == "EdDSA"
    with pytest.raises(AuthenticationError):
        keys.key("two", "RS256")
    with pytest.raises(AuthenticationError):
        keys.key("three", "RS256")


def test_a_jwks_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    old, new = SigningKey.rsa("old"), SigningKey.rsa("new")
    path = tmp_path / "jwks.json"
    write_jwks(path, old)
    keys = JwksFileKeySet(path, ASYMMETRIC)
    write_jwks(path, old, new)
    assert keys.key("new", "RS256").kid == "new"
    write_jwks(path, new)
    with pytest.raises(AuthenticationError):
        keys.key("old", "RS256")


def test_a_broken_jwks_file_keeps_the_keys_read_before(tmp_path: Path) -> None:
    key = SigningKey.rsa("k")
    path = tmp_path / "jwks.json"
    write_jwks(path, key)
    keys = JwksFileKeySet(path, ASYMMETRIC)
    path.write_text("{not json")
    assert keys.key("k", "RS256").kid == "k"


def test_a_missing_jwks_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        JwksFileKeySet(tmp_path / "absent.json", ASYMMETRIC)


def test_a_jwks_file_never_verifies_symmetric_algorithms(tmp_path: Path) -> None:
    write_jwks(tmp_path / "jwks.json", SigningKey.rsa("k"))
    with pytest.raises(ConfigurationError, match="asymmetric"):
        JwksFileKeySet(tmp_path / "jwks.json", frozenset({"RS256", "HS256"}))


def test_keys_of_algorithms_not_accepted_are_left_out(tmp_path: Path) -> None:
    write_jwks(tmp_path / "jwks.json", SigningKey.rsa("r"), SigningKey.ed25519("e"))
    keys = JwksFileKeySet(tmp_path / "jwks.json", frozenset({"EdDSA"}))
    with pytest.raises(AuthenticationError):
        keys.key("r", "RS256")


def test_processes_starting_at_once_share_one_complete_secret(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        secrets = set(pool.map(embedded_secret, [tmp_path] * 16))
    assert len(secrets) == 1
    assert [p.name for p in tmp_path.iterdir()] == [EMBEDDED_KEY_FILE]
