"""Auth settings: embedded defaults, a JWKS file, and mistakes refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from bicameral.errors import ConfigurationError
from bicameral.runtime.auth import AuthSettings, verifier_for
from bicameral.runtime.settings import Settings
from bicameral.security.keys import EmbeddedKeySet, JwksFileKeySet
from tests.jwks import SigningKey, write_jwks


def test_embedded_defaults_verify_hs256_tokens_of_bicameral(tmp_path: Path) -> None:
    verifier = verifier_for(Settings.load(environ={}, data_dir=tmp_path))
    assert isinstance(verifier.keys, EmbeddedKeySet)
    assert (verifier.issuer, verifier.audience) == ("bicameral", "bicameral")
    assert verifier.algorithms == {"HS256"}
    assert verifier.leeway <= 30


def test_a_jwks_file_switches_to_asymmetric_keys(tmp_path: Path) -> None:
    write_jwks(tmp_path / "jwks.json", SigningKey.rsa("k"))
    auth = {"issuer": "https://id", "audience": "shop", "jwks_file": str(tmp_path / "jwks.json")}
    verifier = verifier_for(Settings.load(environ={}, data_dir=tmp_path, auth=auth))
    assert isinstance(verifier.keys, JwksFileKeySet)
    assert verifier.algorithms == {"RS256", "EdDSA"}


def test_auth_settings_come_from_the_toml_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "bicameral.toml"
    config.write_text('[auth]\nissuer = "https://id"\naudience = "shop"\nleeway = 5\n')
    env = {"BICAMERAL_AUTH_AUDIENCE": "shop-api", "BICAMERAL_AUTH_ALGORITHMS": "HS256"}
    auth = AuthSettings.from_mapping(Settings.load(config=config, environ=env).auth)
    assert (auth.issuer, auth.audience, auth.leeway) == ("https://id", "shop-api", 5.0)
    assert auth.algorithms == {"HS256"}


@pytest.mark.parametrize(
    "auth",
    [
        {"issuer": "x", "secret": "hunter2"},
        {"leeway": 60},
        {"leeway": "soon"},
        {"algorithms": ["RS256"]},
        {"algorithms": ["none"]},
    ],
)
def test_bad_auth_settings_are_refused_at_start(tmp_path: Path, auth: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        verifier_for(Settings.load(environ={}, data_dir=tmp_path, auth=auth))
