"""Settings: defaults, TOML file, environment, overrides, placeholders, bad values."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bicameral import ConfigurationError
from bicameral.runtime.settings import ServiceSettings, Settings

TOML = """
app = "shop.app:services"
data_dir = "/srv/data"
port = 9000
transport_url = "sqlite:///{data_dir}/bus.db"

[defaults]
events_url = "postgresql://db/shop_{service}"
reads_url = "sqlite:///{data_dir}/{service}/r.db"

[services.orders]
reads_url = "redis://cache/0"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bicameral.toml"
    path.write_text(TOML)
    return path


def test_defaults_keep_every_service_in_sqlite_files_under_the_data_dir() -> None:
    settings = Settings.load(environ={})
    assert (settings.host, settings.port, settings.data_dir) == (
        "127.0.0.1",
        8000,
        Path(".bicameral"),
    )
    urls = settings.service("inventory")
    assert urls.events_url == "sqlite:///.bicameral/inventory/events.db?create_database=true"
    assert urls.reads_url == "sqlite:///.bicameral/inventory/reads.db"
    assert settings.transport == "sqlite:///.bicameral/transport.db"
    assert settings.consistency_timeout == 5.0


def test_the_toml_file_sets_values_and_placeholders_expand(config: Path) -> None:
    settings = Settings.load(config=config, environ={})
    assert settings.app == "shop.app:services"
    assert settings.port == 9000
    assert settings.data_dir == Path("/srv/data")
    assert settings.transport == "sqlite:////srv/data/bus.db"
    assert settings.service("inventory").events_url == "postgresql://db/shop_inventory"
    assert settings.service("inventory").reads_url == "sqlite:////srv/data/inventory/r.db"
    assert settings.service("orders").reads_url == "redis://cache/0"
    assert settings.service("orders").events_url == "postgresql://db/shop_orders"


def test_the_environment_wins_over_the_file(config: Path) -> None:
    environ = {
        "BICAMERAL_PORT": "9100",
        "BICAMERAL_DATA_DIR": "/env",
        "BICAMERAL_READS_URL": "memory://",
        "BICAMERAL_ORDERS_READS_URL": "redis://other/1",
        "BICAMERAL_PAYMENTS_EVENTS_URL": "sqlite:///{data_dir}/pay.db",
        "BICAMERAL_HOST": "",
        "UNRELATED": "x",
    }
    settings = Settings.load(config=config, environ=environ)
    assert settings.port == 9100
    assert settings.host == "127.0.0.1", "an empty variable is ignored"
    assert settings.data_dir == Path("/env")
    assert settings.service("inventory").reads_url == "memory://"
    assert settings.service("orders").reads_url == "redis://other/1"
    assert settings.service("payments").events_url == "sqlite:////env/pay.db"


def test_values_passed_in_win_over_the_environment(config: Path) -> None:
    settings = Settings.load(
        config=config, environ={"BICAMERAL_PORT": "9100"}, port=9200, data_dir=None
    )
    assert settings.port == 9200
    assert settings.data_dir == Path("/srv/data"), "None means not given"


def test_settings_cannot_change_after_loading() -> None:
    settings = Settings.load(environ={})
    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.services["x"] = {}  # type: ignore[index]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BICAMERAL_PORT": "eighty"}, "port"),
        ({"BICAMERAL_PORT": "70000"}, "port"),
        ({"BICAMERAL_PORT": "-1"}, "port"),
    ],
)
def test_a_bad_environment_value_is_a_configuration_error(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(environ=environ)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("port = [", "not valid TOML"),
        ("colour = 'blue'", "unknown settings: colour"),
        ("port = 'x'", "port"),
        ("consistency_timeout = 'soon'", "consistency_timeout"),
        ("max_consistency_timeout = -1", "max_consistency_timeout"),
        (
            "[services.orders]\nevents_ur = 'memory://'",
            "unknown settings: services.orders.events_ur",
        ),
        ("[defaults]\nport = 1", "unknown settings: defaults.port"),
        ("events_url = 'a'\n[defaults]\nevents_url = 'b'", "events_url is set both"),
        ("defaults = 'memory://'", r"\[defaults\] must be a table"),
        ("partitions = 0", "partitions"),
        ("lease_ttl = 0", "lease_ttl"),
        ("[services]\norders = 'memory://'", "orders"),
    ],
)
def test_a_bad_file_is_a_configuration_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(config=path, environ={})


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        Settings.load(config=tmp_path / "nope.toml", environ={})


def test_the_shared_test_fixture_keeps_data_in_a_temporary_folder(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.data_dir == tmp_path / "data"


KINDS = ("flag", "environment", "file")


@given(st.fixed_dictionaries({}, optional={kind: st.integers(1, 65535) for kind in KINDS}))
def test_flags_win_over_the_environment_over_the_file_over_defaults(given: dict[str, int]) -> None:
    """The documented precedence, for a plain key and for a key of [defaults]."""
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bicameral.toml"
        config.write_text(
            f"port = {given['file']}\n[defaults]\nreads_url = 'file-{given['file']}'\n"
            if "file" in given
            else ""
        )
        environ = {}
        if "environment" in given:
            value = given["environment"]
            environ = {"BICAMERAL_PORT": str(value), "BICAMERAL_READS_URL": f"environment-{value}"}
        flags = (
            {"port": given["flag"], "reads_url": f"flag-{given['flag']}"} if "flag" in given else {}
        )
        settings = Settings.load(config=config, environ=environ, **flags)
    winner = next((kind for kind in KINDS if kind in given), None)
    if winner is None:
        assert settings.port == 8000
        assert settings.service("x").reads_url == "sqlite:///.bicameral/x/reads.db"
    else:
        assert settings.port == given[winner]
        assert settings.service("x").reads_url == f"{winner}-{given[winner]}"


def test_a_services_own_setting_wins_over_every_services_whatever_the_source(
    config: Path,
) -> None:
    settings = Settings.load(config=config, environ={"BICAMERAL_READS_URL": "memory://"})
    assert settings.service("orders").reads_url == "redis://cache/0", "[services.orders]"
    assert settings.service("inventory").reads_url == "memory://"
    flagged = Settings.load(config=config, environ={}, reads_url="memory://")
    assert flagged.service("orders").reads_url == "redis://cache/0"


def test_tables_merge_key_by_key_across_the_file_and_the_environment(config: Path) -> None:
    environ = {"BICAMERAL_ORDERS_EVENTS_URL": "memory://", "BICAMERAL_AUTH_AUDIENCE": "shop"}
    config.write_text(config.read_text() + '[auth]\nissuer = "https://id"\n')
    settings = Settings.load(config=config, environ=environ)
    assert settings.service("orders") == ServiceSettings(
        events_url="memory://", reads_url="redis://cache/0"
    )
    assert dict(settings.auth) == {"issuer": "https://id", "audience": "shop"}


def test_the_keys_of_defaults_may_stand_at_the_top_level_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "top.toml"
    path.write_text('events_url = "memory://"\n[services.orders]\nevents_url = "x://"\n')
    settings = Settings.load(config=path, environ={})
    assert settings.events_url == settings.defaults.events_url == "memory://"
    assert settings.service("payments").events_url == "memory://"
    assert settings.service("orders").events_url == "x://"


def test_the_documented_variables_are_read(tmp_path: Path) -> None:
    environ = {
        "BICAMERAL_APP": "shop.app:services",
        "BICAMERAL_DATA_DIR": str(tmp_path),
        "BICAMERAL_HOST": "0.0.0.0",
        "BICAMERAL_PORT": "9000",
        "BICAMERAL_TRANSPORT_URL": "memory://",
        "BICAMERAL_EVENTS_URL": "e://{service}",
        "BICAMERAL_READS_URL": "r://{service}",
        "BICAMERAL_PARTITIONS": "3",
        "BICAMERAL_LEASE_TTL": "2.5",
        "BICAMERAL_PAYMENTS_EVENTS_URL": "pe://",
        "BICAMERAL_PAYMENTS_READS_URL": "pr://",
        "BICAMERAL_AUTH_ISSUER": "i",
        "BICAMERAL_AUTH_AUDIENCE": "a",
        "BICAMERAL_AUTH_JWKS_FILE": "/jwks.json",
        "BICAMERAL_AUTH_ALGORITHMS": "RS256,EdDSA",
        "BICAMERAL_AUTH_LEEWAY": "3",
    }
    settings = Settings.load(environ=environ)
    assert (settings.app, settings.data_dir, settings.host, settings.port) == (
        "shop.app:services",
        tmp_path,
        "0.0.0.0",
        9000,
    )
    assert (settings.transport, settings.partitions, settings.lease_ttl) == ("memory://", 3, 2.5)
    assert settings.service("orders") == ServiceSettings(
        events_url="e://orders", reads_url="r://orders"
    )
    assert settings.service("payments") == ServiceSettings(events_url="pe://", reads_url="pr://")
    assert dict(settings.auth) == {
        "issuer": "i",
        "audience": "a",
        "jwks_file": "/jwks.json",
        "algorithms": "RS256,EdDSA",
        "leeway": "3",
    }


def test_made_directly_settings_read_only_bicameral_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("BICAMERAL_HOST", "0.0.0.0")
    settings = Settings(app="x")
    assert (settings.app, settings.host, settings.port) == ("x", "0.0.0.0", 8000)


def test_a_worker_process_takes_its_roles_metrics_port_before_the_common_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bicameral.toml"
    path.write_text("[metrics]\nport = 9100\nroles = { projector = 9101, reactions = 9103 }\n")
    settings = Settings.load(config=path, environ={})
    assert settings.metrics_port(["projector"]) == 9101
    assert settings.metrics_port(["relay", "reactions"]) == 9103
    assert settings.metrics_port(["relay"]) == 9100
    assert Settings.load(environ={}).metrics_port(["relay"]) is None


def test_the_environment_sets_the_metrics_port(tmp_path: Path) -> None:
    path = tmp_path / "bicameral.toml"
    path.write_text("[metrics]\nport = 9100\nroles = { relay = 9102 }\n")
    settings = Settings.load(config=path, environ={"BICAMERAL_METRICS_PORT": "9200"})
    assert (settings.metrics_port(["projector"]), settings.metrics_port(["relay"])) == (9200, 9102)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[metrics]\nport = 'x'", "metrics.port"),
        ("[metrics]\nport = 70000", "metrics.port"),
        ("[metrics]\nroles = { projector = -1 }", "metrics.roles.projector"),
        ("[metrics]\nroles = { command-api = 9000 }", "command-api"),
        ("[metrics]\nroles = 9000", "metrics.roles"),
        ("[metrics]\nhost = 'x'", "host"),
        ("metrics = 9100", "metrics"),
    ],
)
def test_a_bad_metrics_table_is_a_configuration_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message):
        Settings.load(config=path, environ={})
