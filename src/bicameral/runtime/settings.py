"""Settings: read once at start from an optional TOML file and the environment, then frozen.

Precedence, highest first: CLI flags (and values passed to ``Settings.load``), environment
variables, the TOML file, defaults. Tables (``[auth]``, ``[defaults]``, ``[services.NAME]``)
merge key by key across these sources. A service's own setting (``[services.NAME]`` or
``BICAMERAL_<SERVICE>_...``) wins over every service's (``[defaults]``, the top level or
``BICAMERAL_...``), whatever the source of each. Backend URLs may use ``{data_dir}`` and
``{service}`` placeholders::

    app = "shop.app:services"
    data_dir = ".bicameral"
    transport_url = "nats://127.0.0.1:4222"
    partitions = 8          # of each projection, shared by its projector processes
    lease_ttl = 10.0        # seconds before a silent projector's partitions move to others

    [defaults]              # every service's, unless its own table says otherwise
    events_url = "postgresql://127.0.0.1:5432/shop_{service}?create_database=true"
    reads_url = "redis://127.0.0.1:6379/0"

    [services.orders]
    reads_url = "postgresql://127.0.0.1:5432/shop_orders_reads"

The keys of ``[defaults]`` may also stand at the top level of the file (``events_url = ...``),
but not in both places: a key given twice is an error naming it, as is any unknown key.

    [http]
    max_body_bytes = 1048576    # a larger request body is answered 413 unread
    max_header_bytes = 65536    # request line and headers; more is answered 431

    [metrics]               # the /metrics, /health port of worker-only processes
    port = 9100             # any worker role (no port: an ephemeral one, printed at start)
    roles = { projector = 9101, relay = 9102, reactions = 9103 }   # per role, first

    [console]               # the web console at /console (docs/operations.md)
    url = "https://shop.example.com"   # the base URL `bicameral console` prints links for
    session_ttl = 3600      # seconds a session lasts

Environment: ``BICAMERAL_APP``, ``BICAMERAL_DATA_DIR``, ``BICAMERAL_HOST``, ``BICAMERAL_PORT``,
``BICAMERAL_TRANSPORT_URL``, ``BICAMERAL_EVENTS_URL``, ``BICAMERAL_READS_URL``,
``BICAMERAL_PARTITIONS``, ``BICAMERAL_LEASE_TTL`` and per service
``BICAMERAL_<SERVICE>_EVENTS_URL`` / ``BICAMERAL_<SERVICE>_READS_URL``; the ``[auth]`` table
(see ``bicameral.runtime.auth``) from ``BICAMERAL_AUTH_ISSUER``, ``_AUDIENCE``,
``_JWKS_FILE``, ``_ALGORITHMS`` (comma-separated) and ``_LEEWAY``. In general every top-level
setting is ``BICAMERAL_<KEY>``, every key of a table ``BICAMERAL_<TABLE>_<KEY>``; an empty
variable counts as not set.

A new setting is one line: a field of ``Settings`` (a top-level key), of a ``Table`` subclass
that is a field of ``Settings`` (a ``[table]``), or of ``ServiceSettings`` (a per-service key).
The ``[http]`` table: ``BICAMERAL_HTTP_MAX_BODY_BYTES`` and ``BICAMERAL_HTTP_MAX_HEADER_BYTES``;
``[metrics]``: ``BICAMERAL_METRICS_PORT`` (its ``roles`` only from the file); ``[console]``:
``BICAMERAL_CONSOLE_URL`` and ``BICAMERAL_CONSOLE_SESSION_TTL``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bicameral.errors import ConfigurationError

__all__ = [
    "WORKER_ROLES",
    "ConsoleSettings",
    "HttpSettings",
    "MetricsSettings",
    "ServiceSettings",
    "Settings",
    "Table",
]

WORKER_ROLES = ("projector", "relay", "reactions")
"""The roles that serve no API: a process of only these serves /metrics on its metrics port."""
PREFIX = "BICAMERAL_"
DEFAULT_EVENTS_URL = "sqlite:///{data_dir}/{service}/events.db?create_database=true"
DEFAULT_READS_URL = "sqlite:///{data_dir}/{service}/reads.db"
DEFAULT_TRANSPORT_URL = "sqlite:///{data_dir}/transport.db"
AUTH_KEYS = ("issuer", "audience", "jwks_file", "algorithms", "leeway")
"""The keys of ``[auth]`` read from the environment (checked by ``bicameral.runtime.auth``)."""


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


class Table(BaseModel):
    """A ``[table]`` of settings: typed keys, an unknown key is an error, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSettings(Table):
    """Where one service keeps its events and its read models (``[defaults]``,
    ``[services.NAME]``)."""

    events_url: str = DEFAULT_EVENTS_URL
    reads_url: str = DEFAULT_READS_URL


Seconds = Annotated[float, Field(ge=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]


Limit = Annotated[int, Field(strict=False, ge=1024, description="bytes, at least 1024")]


class HttpSettings(Table):
    """Limits of the HTTP edge (``[http]``), enforced before a request does any work."""

    max_body_bytes: Limit = 1 << 20
    max_header_bytes: Limit = 64 << 10


Port = Annotated[int, Field(strict=False, ge=0, le=65535, description="a TCP port (0-65535)")]


def _worker_roles(roles: Mapping[str, int]) -> Mapping[str, int]:
    stray = set(roles) - set(WORKER_ROLES)
    if stray:
        raise ValueError(
            f"{sorted(stray)} are not worker roles ({', '.join(WORKER_ROLES)}); "
            "API processes serve /metrics on their own port"
        )
    return _frozen(roles)


class MetricsSettings(Table):
    """The port of worker-only processes' ``/metrics`` and ``/health`` (``[metrics]``): one
    per worker role (``roles``), else ``port`` for all, else an ephemeral one."""

    port: Port | None = None
    roles: Annotated[Mapping[str, Port], AfterValidator(_worker_roles)] = Field(
        default_factory=dict
    )


class ConsoleSettings(Table):
    """The web console (``[console]``): the base URL its sign-in links name (empty: this
    process's ``http://host:port``) and how long a session lasts, in seconds."""

    url: str = ""
    session_ttl: PositiveSeconds = 3600.0


class Settings(BaseSettings):
    """Everything a process needs to know, fixed at start."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    app: str = ""
    data_dir: Path = Path(".bicameral")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535, description="a TCP port (0-65535)")] = 8000
    transport_url: str = DEFAULT_TRANSPORT_URL
    consistency_timeout: Seconds = 5.0
    max_consistency_timeout: PositiveSeconds = 30.0
    partitions: Annotated[int, Field(ge=1, description="of each projection")] = 8
    lease_ttl: PositiveSeconds = 10.0
    defaults: ServiceSettings = ServiceSettings()
    http: HttpSettings = HttpSettings()
    metrics: MetricsSettings = MetricsSettings()
    console: ConsoleSettings = ConsoleSettings()
    services: Annotated[Mapping[str, ServiceSettings], AfterValidator(_frozen)] = Field(
        default_factory=dict
    )
    auth: Annotated[Mapping[str, Any], AfterValidator(_frozen)] = Field(default_factory=dict)
    extra: Annotated[Mapping[str, Any], AfterValidator(_frozen)] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(...)`` reads what ``Settings.load(...)`` reads without a file: the values
        passed, then the ``BICAMERAL_`` variables (never ``.env`` files or unprefixed ones)."""
        return init_settings, _Environment(settings_cls, os.environ)

    @property
    def events_url(self) -> str:
        """Returns every service's event store URL, unless its own settings name another."""
        return self.defaults.events_url

    @property
    def reads_url(self) -> str:
        """Returns every service's read store URL, unless its own settings name another."""
        return self.defaults.reads_url

    def _expand(self, template: str, service: str = "") -> str:
        return template.replace("{data_dir}", str(self.data_dir)).replace("{service}", service)

    def service(self, name: str) -> ServiceSettings:
        """Returns the settings of service ``name``: its own over ``[defaults]``, expanded."""
        values = self.defaults.model_dump()
        own = self.services.get(name)
        if own is not None:
            values.update(own.model_dump(exclude_unset=True))
        return ServiceSettings(
            **{k: self._expand(v, name) if isinstance(v, str) else v for k, v in values.items()}
        )

    def metrics_port(self, roles: Iterable[str]) -> int | None:
        """Returns the metrics port of a worker-only process of ``roles``: the first of its
        roles' own ports (in ``WORKER_ROLES`` order), else ``[metrics] port``, else None."""
        own = self.metrics.roles
        chosen = set(roles)
        for role in WORKER_ROLES:
            if role in chosen and role in own:
                return own[role]
        return self.metrics.port

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
        """Returns settings from ``overrides`` (None means not given), ``environ`` (by default
        the process's) and ``config`` (TOML), in that order of precedence."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in ServiceSettings.model_fields:
            if key in given:
                given.setdefault("defaults", {})[key] = given.pop(key)
        sources: list[PydanticBaseSettingsSource] = [
            InitSettingsSource(cls, init_kwargs=given),
            _Environment(cls, os.environ if environ is None else environ),
        ]
        if config is not None:
            sources.append(_file(cls, Path(config)))
        try:
            return cls(_build_sources=(tuple(sources), {}))
        except ValidationError as exc:
            raise _problem(exc, config) from None


def _table_keys(name: str, field: FieldInfo) -> tuple[str, ...] | None:
    """Returns the keys of table ``name`` read from the environment, None for a plain key."""
    if name == "auth":
        return AUTH_KEYS
    kind = field.annotation
    if isinstance(kind, type) and issubclass(kind, Table):
        return tuple(kind.model_fields)
    return None


class _Environment(PydanticBaseSettingsSource):
    """``BICAMERAL_<KEY>``, ``BICAMERAL_<TABLE>_<KEY>`` and ``BICAMERAL_<SERVICE>_<KEY>``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = {k: v for k, v in environ.items() if k.startswith(PREFIX) and v}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Returns the variable of a plain key (tables are read by ``__call__``)."""
        return self.environ.get(PREFIX + field_name.upper()), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if name in ("defaults", "services", "extra"):
                continue
            keys = _table_keys(name, field)
            if keys is None:
                value, _, _ = self.get_field_value(field, name)
                if value is not None:
                    values[name] = value
                continue
            table = {k: self.environ.get(f"{PREFIX}{name.upper()}_{k.upper()}") for k in keys}
            if any(v is not None for v in table.values()):
                values[name] = {k: v for k, v in table.items() if v is not None}
        defaults: dict[str, str] = {}
        services: dict[str, dict[str, str]] = {}
        for key in ServiceSettings.model_fields:
            suffix = "_" + key.upper()
            for var, value in self.environ.items():
                if var == PREFIX + key.upper():
                    defaults[key] = value
                elif var.endswith(suffix) and len(var) > len(PREFIX) + len(suffix):
                    services.setdefault(var[len(PREFIX) : -len(suffix)].lower(), {})[key] = value
        if defaults:
            values["defaults"] = defaults
        if services:
            values["services"] = services
        return values


class _File(TomlConfigSettingsSource):
    """The TOML file, with the top-level keys of ``[defaults]`` folded into it."""

    def _read_file(self, path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(path)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            raise ConfigurationError(f"{path}: [defaults] must be a table")
        for key in ServiceSettings.model_fields:
            if key in data:
                if key in defaults:
                    raise ConfigurationError(
                        f"{path}: {key} is set both at the top level and in [defaults]"
                    )
                defaults[key] = data.pop(key)
        if defaults:
            data["defaults"] = defaults
        return data


def _file(cls: type[BaseSettings], path: Path) -> _File:
    if not path.is_file():
        raise ConfigurationError(f"config file not found: {path}")
    return _File(cls, toml_file=path)


def _problem(exc: ValidationError, config: Path | str | None) -> ConfigurationError:
    """Returns one line naming every setting at fault in ``exc``."""
    unknown, bad = [], []
    for error in exc.errors(include_url=False):
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.append(key)
        else:
            bad.append(f"bad setting {key} = {error['input']!r}: {error['msg']}")
    if unknown:
        origin = f"{config}: " if config is not None else ""
        bad.insert(0, f"{origin}unknown settings: {', '.join(unknown)}")
    return ConfigurationError("; ".join(bad))
