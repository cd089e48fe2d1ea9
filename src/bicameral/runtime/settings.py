"""Settings: read once at start from an optional TOML file and the environment, then frozen.

Precedence, highest first: values passed in (CLI flags, tests), environment variables, the
TOML file, defaults. Backend URLs may use ``{data_dir}`` and ``{service}`` placeholders::

    app = "shop.app:services"
    data_dir = ".bicameral"
    transport_url = "nats://127.0.0.1:4222"
    partitions = 8          # of each projection, shared by its projector processes
    lease_ttl = 10.0        # seconds before a silent projector's partitions move to others

    [defaults]
    events_url = "postgresql://127.0.0.1:5432/shop_{service}"
    reads_url = "redis://127.0.0.1:6379/0"

    [services.orders]
    reads_url = "postgresql://127.0.0.1:5432/shop_orders_reads"

    [metrics]               # the /metrics, /health port of worker-only processes
    port = 9100             # any worker role (no port: an ephemeral one, printed at start)
    roles = { projector = 9101, relay = 9102, reactions = 9103 }   # per role, first

Environment: ``BICAMERAL_APP``, ``BICAMERAL_DATA_DIR``, ``BICAMERAL_HOST``, ``BICAMERAL_PORT``,
``BICAMERAL_TRANSPORT_URL``, ``BICAMERAL_EVENTS_URL``, ``BICAMERAL_READS_URL``,
``BICAMERAL_PARTITIONS``, ``BICAMERAL_LEASE_TTL``, ``BICAMERAL_METRICS_PORT`` and per service
``BICAMERAL_<SERVICE>_EVENTS_URL`` / ``BICAMERAL_<SERVICE>_READS_URL``; the ``[auth]`` table
(see ``bicameral.runtime.auth``) from ``BICAMERAL_AUTH_ISSUER``, ``_AUDIENCE``,
``_JWKS_FILE``, ``_ALGORITHMS`` (comma-separated) and ``_LEEWAY``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bicameral.errors import ConfigurationError

__all__ = ["WORKER_ROLES", "ServiceSettings", "Settings"]

WORKER_ROLES = ("projector", "relay", "reactions")
"""The roles that serve no API: a process of only these serves /metrics on its metrics port."""
DEFAULT_EVENTS_URL = "sqlite:///{data_dir}/{service}/events.db"
DEFAULT_READS_URL = "sqlite:///{data_dir}/{service}/reads.db"
DEFAULT_TRANSPORT_URL = "sqlite:///{data_dir}/transport.db"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Where one service keeps its events and its read models."""

    events_url: str
    reads_url: str


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know, fixed at start."""

    app: str = ""
    data_dir: Path = Path(".bicameral")
    host: str = "127.0.0.1"
    port: int = 8000
    transport_url: str = DEFAULT_TRANSPORT_URL
    events_url: str = DEFAULT_EVENTS_URL
    reads_url: str = DEFAULT_READS_URL
    services: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    consistency_timeout: float = 5.0
    max_consistency_timeout: float = 30.0
    partitions: int = 8
    lease_ttl: float = 10.0
    auth: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.lease_ttl <= 0:
            raise ConfigurationError("partitions must be at least 1 and lease_ttl positive")
        object.__setattr__(self, "services", MappingProxyType(dict(self.services)))
        object.__setattr__(self, "auth", MappingProxyType(dict(self.auth)))
        object.__setattr__(self, "metrics", MappingProxyType(_metrics(self.metrics)))

    def _expand(self, template: str, service: str = "") -> str:
        return template.replace("{data_dir}", str(self.data_dir)).replace("{service}", service)

    def service(self, name: str) -> ServiceSettings:
        """Returns the backend URLs of service ``name``."""
        own = self.services.get(name, {})
        return ServiceSettings(
            events_url=self._expand(own.get("events_url", self.events_url), name),
            reads_url=self._expand(own.get("reads_url", self.reads_url), name),
        )

    def metrics_port(self, roles: Iterable[str]) -> int | None:
        """Returns the metrics port of a worker-only process of ``roles``: the first of its
        roles' own ports (in ``WORKER_ROLES`` order), else ``[metrics] port``, else None."""
        own: Mapping[str, int] = self.metrics.get("roles", {})
        chosen = set(roles)
        for role in WORKER_ROLES:
            if role in chosen and role in own:
                return own[role]
        port: int | None = self.metrics.get("port")
        return port

    @property
    def transport(self) -> str:
        """Returns the transport URL."""
        return self._expand(self.transport_url)

    @classmethod
    def load(
        cls,
        *,
        config: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Returns settings from ``config`` (TOML), ``environ`` and ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        services: dict[str, dict[str, str]] = {}
        if config is not None:
            values, services = _from_toml(Path(config))
        for key, var in (
            ("app", "BICAMERAL_APP"),
            ("data_dir", "BICAMERAL_DATA_DIR"),
            ("host", "BICAMERAL_HOST"),
            ("port", "BICAMERAL_PORT"),
            ("transport_url", "BICAMERAL_TRANSPORT_URL"),
            ("events_url", "BICAMERAL_EVENTS_URL"),
            ("reads_url", "BICAMERAL_READS_URL"),
            ("partitions", "BICAMERAL_PARTITIONS"),
            ("lease_ttl", "BICAMERAL_LEASE_TTL"),
        ):
            if env.get(var):
                values[key] = env[var]
        for var, value in env.items():
            for suffix in ("_EVENTS_URL", "_READS_URL"):
                if var.startswith("BICAMERAL_") and var.endswith(suffix) and value:
                    name = var[len("BICAMERAL_") : -len(suffix)].lower()
                    if name:
                        services.setdefault(name, {})[suffix[1:].lower()] = value
        auth = dict(values.get("auth") or {})
        for key in ("issuer", "audience", "jwks_file", "algorithms", "leeway"):
            if env.get(f"BICAMERAL_AUTH_{key.upper()}"):
                auth[key] = env[f"BICAMERAL_AUTH_{key.upper()}"]
        values["auth"] = auth
        if env.get("BICAMERAL_METRICS_PORT"):
            values["metrics"] = {
                **(values.get("metrics") or {}),
                "port": env["BICAMERAL_METRICS_PORT"],
            }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["services"] = services
        for key, value in list(values.items()):
            if key in _CHECKS:
                values[key] = _checked(key, value)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad setting: {exc}") from None


def _port(value: Any) -> int:
    port: int = _number(value, int)
    if not 0 <= port <= 65535:
        raise ValueError("not a TCP port (0-65535)")
    return port


def _partitions(value: Any) -> int:
    count: int = _number(value, int)
    if count < 1:
        raise ValueError("a projection has at least 1 partition")
    return count


def _seconds(value: Any, *, positive: bool = False) -> float:
    seconds = float(_number(value, float))
    if seconds < 0 or (positive and seconds == 0):
        raise ValueError("not a positive number of seconds" if positive else "negative")
    return seconds


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a {kind.__name__}")
    if kind is int and isinstance(value, float):
        raise ValueError("not a whole number")
    return kind(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


_CHECKS: dict[str, Any] = {
    "app": _text,
    "data_dir": lambda v: Path(_text(v)) if not isinstance(v, Path) else v,
    "host": _text,
    "port": _port,
    "transport_url": _text,
    "events_url": _text,
    "reads_url": _text,
    "consistency_timeout": _seconds,
    "max_consistency_timeout": lambda v: _seconds(v, positive=True),
    "partitions": _partitions,
    "lease_ttl": lambda v: _seconds(v, positive=True),
}


def _metrics(table: Any) -> dict[str, Any]:
    """Returns the ``[metrics]`` table checked: ``port`` and ``roles`` (role = port)."""
    if not isinstance(table, Mapping):
        raise ConfigurationError("bad setting metrics: not a table")
    unknown = set(table) - {"port", "roles"}
    if unknown:
        raise ConfigurationError(f"unknown [metrics] settings {sorted(unknown)}")
    checked: dict[str, Any] = {}
    if "port" in table:
        checked["port"] = _port_setting("metrics.port", table["port"])
    roles = table.get("roles", {})
    if not isinstance(roles, Mapping):
        raise ConfigurationError("bad setting metrics.roles: not a table of role = port")
    stray = set(roles) - set(WORKER_ROLES)
    if stray:
        raise ConfigurationError(
            f"bad setting metrics.roles: {sorted(stray)} are not worker roles "
            f"({', '.join(WORKER_ROLES)}); API processes serve /metrics on their own port"
        )
    checked["roles"] = MappingProxyType(
        {role: _port_setting(f"metrics.roles.{role}", port) for role, port in roles.items()}
    )
    return checked


def _port_setting(name: str, value: Any) -> int:
    try:
        return _port(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad setting {name} = {value!r}: {exc}") from None


def _checked(key: str, value: Any) -> Any:
    """Returns ``value`` converted for setting ``key``; ConfigurationError naming it otherwise."""
    try:
        return _CHECKS[key](value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad setting {key} = {value!r}: {exc}") from None


def _services(path: Path, raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: [services] must be a table of service tables")
    services: dict[str, dict[str, str]] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"{path}: services.{name} must be a table")
        unknown = set(table) - set(ServiceSettings.__dataclass_fields__)
        if unknown:
            raise ConfigurationError(
                f"{path}: unknown settings of services.{name}: {sorted(unknown)}"
            )
        services[str(name)] = {k: _checked(k, v) for k, v in table.items()}
    return services


def _from_toml(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
    services = _services(path, data.pop("services", {}))
    defaults = data.pop("defaults", {})
    values = {**data, **defaults}
    known = set(Settings.__dataclass_fields__) - {"services"}
    unknown = set(values) - known
    if unknown:
        raise ConfigurationError(f"{path}: unknown settings {sorted(unknown)}")
    return values, services
