"""The shipped deploy files: settings that load, and an nginx config routing every service."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bicameral.runtime.apps import load_services
from bicameral.runtime.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICES = [s.name for s in load_services("shop.app:services")]


@pytest.mark.parametrize("name", ["local.toml", "production.toml"])
def test_settings_give_each_service_its_own_postgres_database_and_redis_prefix(
    name: str,
) -> None:
    settings = Settings.load(config=DEPLOY / name, environ={})
    assert urlsplit(settings.transport).scheme == "nats"
    databases, prefixes = set(), set()
    for service in SERVICES:
        urls = settings.service(service)
        events, reads = urlsplit(urls.events_url), urlsplit(urls.reads_url)
        assert events.scheme == "postgresql"
        assert reads.scheme == "redis"
        databases.add(events.path)
        prefixes.add(parse_qs(reads.query)["prefix"][0])
    assert len(databases) == len(prefixes) == len(SERVICES)


def test_local_settings_point_at_this_machines_default_ports() -> None:
    settings = Settings.load(config=DEPLOY / "local.toml", environ={})
    urls = settings.service("inventory")
    assert urlsplit(urls.events_url).netloc == "postgres@127.0.0.1:5432"
    assert urlsplit(urls.reads_url).netloc == "127.0.0.1:6379"
    assert urlsplit(settings.transport).netloc == "127.0.0.1:4222"


def test_only_local_settings_let_bicameral_create_missing_event_stores() -> None:
    local = Settings.load(config=DEPLOY / "local.toml", environ={})
    production = Settings.load(config=DEPLOY / "production.toml", environ={})
    for service in SERVICES:
        assert parse_qs(urlsplit(local.service(service).events_url).query)["create_database"] == [
            "true"
        ]
        assert "create_database" not in production.service(service).events_url


def test_the_environment_overrides_a_deploy_file() -> None:
    settings = Settings.load(
        config=DEPLOY / "production.toml",
        environ={"BICAMERAL_EVENTS_URL": "postgresql://u:secret@db:5432/x_{service}"},
    )
    assert settings.service("inventory").events_url == "postgresql://u:secret@db:5432/x_inventory"


@pytest.mark.parametrize("service", SERVICES)
def test_nginx_routes_each_services_commands_and_queries_to_its_own_copies(service: str) -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    for kind in ("commands", "queries"):
        block = re.search(rf"upstream {service}_{kind} \{{(.*?)\}}", conf, re.S)
        assert block is not None
        servers = re.findall(r"server \S+ max_fails=\d+ fail_timeout=\S+;", block.group(1))
        assert len(servers) >= 2
        assert re.search(
            rf"location /{service}/{kind}/ +\{{ proxy_pass http://{service}_{kind};", conf
        )
    assert "proxy_next_upstream error timeout" in conf
    assert "location = /health" in conf
    ready = re.search(r"location ~ \^/health/ready/\(\?<svc>([a-z|]+)\)", conf)
    assert ready is not None
    assert service in ready.group(1).split("|")


def test_nginx_sends_the_operational_routes_to_every_api_copy() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    for path in ("/openapi.json", "/docs", "/redoc", "/metrics", "/health/ready"):
        assert re.search(rf"location = {re.escape(path)} +\{{ proxy_pass http://api; }}", conf)
    assert "location ^~ /docs/assets/" in conf
    api = re.search(r"upstream api \{(.*?)\}", conf, re.S)
    assert api is not None
    copies = set(re.findall(r"server (\S+) ", api.group(1)))
    for service in SERVICES:
        for kind in ("commands", "queries"):
            block = re.search(rf"upstream {service}_{kind} \{{(.*?)\}}", conf, re.S)
            assert block is not None
            assert set(re.findall(r"server (\S+) ", block.group(1))) <= copies
    names = re.search(r"location ~ \^/\(([a-z|]+)\)/\(commands\|queries\)/", conf)
    assert names is not None
    assert set(names.group(1).split("|")) == set(SERVICES)


def test_prometheus_scrapes_every_process_of_the_readmes_layout_with_its_labels() -> None:
    """Each role's ports in the README's start-up loop are the targets of that role."""
    import yaml

    readme = (DEPLOY / "README.md").read_text()
    suffixes: dict[str, list[str]] = {}
    for role, suffix in re.findall(
        r"serve --service \$service --role (\S+) +--(?:metrics-)?port 8\$\{n\}(\d\d)", readme
    ):
        suffixes.setdefault(role, []).append(suffix)
    assert set(suffixes) == {"command-api", "query-api", "projector", "relay", "reactions"}
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["honor_labels"] is True
    assert job["authorization"]["credentials_file"]
    found = {
        (group["labels"]["service"], group["labels"]["role"]): group["targets"]
        for group in job["static_configs"]
    }
    expected = {
        (service, role): [f"127.0.0.1:8{n}{suffix}" for suffix in ends]
        for n, service in enumerate(["inventory", "orders", "payments"], 1)
        for role, ends in suffixes.items()
    }
    assert found == expected
    assert config["rule_files"] == ["alerts.yml"]


def test_production_gives_each_worker_role_a_metrics_port_of_its_own() -> None:
    settings = Settings.load(config=DEPLOY / "production.toml", environ={})
    ports = {role: settings.metrics_port([role]) for role in ("projector", "relay", "reactions")}
    assert None not in ports.values()
    assert len(set(ports.values())) == 3
