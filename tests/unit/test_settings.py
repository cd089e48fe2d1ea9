"""Settings: defaults, TOML file, environment, overrides, placeholders, bad values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bicameral import ConfigurationError
from bicameral.runtime.settings import Settings

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
    assert urls.events_url == "sqlite:///.bicameral/inventory/events.db"
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
    with pytest.raises(dataclasses.FrozenInstanceError):
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
        ("colour = 'blue'", "unknown settings"),
        ("port = 'x'", "port"),
        ("consistency_timeout = 'soon'", "consistency_timeout"),
        ("max_consistency_timeout = -1", "max_consistency_timeout"),
        ("[services.orders]\nevents_ur = 'memory://'", "events_ur"),
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
