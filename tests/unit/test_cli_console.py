"""``bicameral console``: prints a one-time sign-in link for an admin, valid 5 minutes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from bicameral.cli.console import base_url
from bicameral.cli.main import app
from bicameral.errors import AuthenticationError
from bicameral.runtime.auth import verifier_for
from bicameral.runtime.console import console_audience
from bicameral.runtime.settings import Settings
from bicameral.security.keys import embedded_secret


def test_the_link_names_the_url_and_signs_in_an_admin(tmp_path: Path) -> None:
    embedded_secret(tmp_path)
    done = CliRunner().invoke(
        app,
        [
            "console",
            "--data-dir",
            str(tmp_path),
            "--url",
            "https://ops.example/",
            "--subject",
            "kim",
        ],
    )
    assert done.exit_code == 0, done.output
    link = urlsplit(done.stdout.strip())
    assert (link.scheme, link.netloc, link.path) == ("https", "ops.example", "/console/sign-in")
    token = parse_qs(link.query)["token"][0]
    verifier = verifier_for(Settings.load(environ={}, data_dir=tmp_path))
    with pytest.raises(AuthenticationError):  # no bearer token for the API: another audience
        verifier.verify(token)
    console = replace(verifier, audience=console_audience(verifier.audience))
    claims = console.claims(token)
    assert claims["sub"] == "kim"
    assert claims["roles"] == ["admin"]
    assert claims["exp"] - claims["iat"] == 300
    assert "works once" in done.stderr


def test_the_base_url_comes_from_the_option_the_settings_or_host_and_port() -> None:
    settings = Settings.load(environ={}, host="0.0.0.0", port=8123)
    assert base_url(settings) == "http://127.0.0.1:8123"
    assert base_url(settings, "http://x/") == "http://x"
    configured = Settings.load(environ={}, console={"url": "https://shop.example/"})
    assert base_url(configured) == "https://shop.example"


def test_without_a_key_or_with_a_jwks_file_it_fails_in_one_line(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["console", "--data-dir", str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert missing.stderr.count("\n") == 1
    assert "no signing key" in missing.stderr
    config = tmp_path / "jwks.toml"
    config.write_text(f'[auth]\njwks_file = "{tmp_path / "keys.json"}"\n')
    jwks = CliRunner().invoke(app, ["console", "--config", str(config)])
    assert jwks.exit_code == 1
    assert "sign in at http://127.0.0.1:8000/console/sign-in" in jwks.stderr
