"""``bicameral``: run services, and look at their logs and read models.

Every failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bicameral.cli.demo import demo_app
from bicameral.cli.dlq import dlq_app
from bicameral.errors import BicameralError, ConfigurationError
from bicameral.runtime.apps import load_services
from bicameral.runtime.node import API_ROLES, ROLES, WORKER_ROLES, Node, up_worker
from bicameral.runtime.settings import Settings
from bicameral.service import Service

__all__ = ["app", "fail", "main", "open_node", "settings_from"]

T = TypeVar("T")

app = typer.Typer(
    help="bicameral: CQRS for Python microservices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
events_app = typer.Typer(help="Read services' event logs.", no_args_is_help=True)
projections_app = typer.Typer(help="Inspect and rebuild read models.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the API.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(projections_app, name="projections")
app.add_typer(token_app, name="token")
app.add_typer(demo_app, name="demo")
app.add_typer(dlq_app, name="dlq")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file.", show_default="none")
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where embedded data lives.",
        show_default="$BICAMERAL_DATA_DIR, else .bicameral",
    ),
]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="Services to run, as module:attr or path/to/file.py:attr.",
        show_default="$BICAMERAL_APP, else the one installed app",
    ),
]
PortOpt = Annotated[
    int | None, typer.Option(help="HTTP port.", show_default="$BICAMERAL_PORT, else 8000")
]
HostOpt = Annotated[
    str | None, typer.Option(help="HTTP host.", show_default="$BICAMERAL_HOST, else 127.0.0.1")
]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"bicameral {version('bicameral')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """bicameral: CQRS for Python microservices."""


def fail(message: str) -> typer.Exit:
    """Prints one error line and returns the exit to raise."""
    typer.echo(f"bicameral: error: {message}", err=True)
    return typer.Exit(1)


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Returns the settings of this command."""
    return Settings.load(config=config, **overrides)


def run(coro: Callable[[], Awaitable[T]]) -> T:
    """Runs ``coro`` and turns bicameral errors into one line and exit 1."""
    try:
        return asyncio.run(coro())  # type: ignore[arg-type]
    except BicameralError as exc:
        raise fail(exc.detail) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def serve_http(
    node: Node, settings: Settings, *, banner: bool, api: list[Service] | None = None
) -> None:
    """Serves ``node`` over HTTP until interrupted; its OpenAPI document describes ``api``'s
    services (default: what ``node`` serves)."""
    from bicameral.http.app import create_app
    from bicameral.runtime.logs import configure_logging

    base = f"http://{settings.host}:{settings.port}"
    sock = _listen(settings.host, settings.port)
    if sock is None:
        raise fail(f"cannot serve on {base}: the address is in use or not available")
    configure_logging(roles=",".join(sorted(next(iter(node.runtimes.values())).roles)))
    try:
        http = create_app(node, api=api)
    except BicameralError as exc:
        sock.close()
        raise fail(exc.detail) from None
    if banner:
        names = ", ".join(node.runtimes)
        typer.echo(f"bicameral: serving {names} at {base}")
        typer.echo(f"  API docs:  {base}/docs")
        typer.echo(f"  health:    {base}/health    metrics: {base}/metrics (role admin)")
        typer.echo(f"  data:      {settings.data_dir.resolve()}")
        if not settings.auth.get("jwks_file"):
            _token_help(settings, base)
            data_dir = shlex.quote(str(settings.data_dir))
            typer.echo(f"  console:   {_program()} console --data-dir {data_dir}  (a sign-in link)")
    _run_server(node, settings, http, sock, base)


def serve_operations(node: Node, settings: Settings, port: int, *, what: str) -> None:
    """Serves ``/health``, ``/health/ready`` and ``/metrics`` of a worker-only ``node`` on
    ``port`` while it works.

    Port 0 takes any free port; the address is printed either way.
    """
    from bicameral.http.operations import create_operations_app
    from bicameral.runtime.logs import configure_logging

    sock = _listen(settings.host, port)
    if sock is None:
        raise fail(
            f"cannot serve metrics on {settings.host}:{port}: the address is in use or not "
            "available (set another with --metrics-port or [metrics] in the config)"
        )
    base = f"http://{settings.host}:{sock.getsockname()[1]}"
    service = next(iter(node.runtimes))
    roles = next(iter(node.runtimes.values())).roles
    configure_logging(service=service, roles=",".join(sorted(roles)))
    try:
        http = create_operations_app(node)
    except BicameralError as exc:
        sock.close()
        raise fail(exc.detail) from None
    banner = f"bicameral: {what}; health: {base}/health  metrics: {base}/metrics"
    _run_server(node, settings, http, sock, base, banner=banner)


def _run_server(
    node: Node,
    settings: Settings,
    http: Any,
    sock: socket.socket,
    base: str,
    *,
    banner: str | None = None,
) -> None:
    """Starts ``node``, then serves ``http`` on ``sock`` (with the request head bounded) until
    interrupted; a start-up failure is one line and no server."""
    import uvicorn

    from bicameral.http.server import server_config

    config = server_config(http, settings)
    server = uvicorn.Server(config)
    try:
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve(node, server, sock, banner))
    except BicameralError as exc:
        raise fail(exc.detail) from None
    except SystemExit:
        if server.started:
            raise
    finally:
        sock.close()
    if not server.started:
        raise fail(f"could not serve on {base}")


def _listen(host: str, port: int) -> socket.socket | None:
    """Returns a socket listening on ``host:port``, or None when that is not possible now."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except OSError:
        return None


async def _serve(node: Node, server: Any, sock: socket.socket, banner: str | None) -> None:
    """Starts ``node`` before listening, so a start-up failure (a missing database, say) is one
    line and no server; the app's lifespan stops it when the server stops. What starting made is
    frozen out of the garbage collector's scans (``runtime.heap``)."""
    from bicameral.runtime.heap import settle

    try:
        await node.start()
    except BaseException:
        await node.stop()
        raise
    settle()
    if banner is not None:
        typer.echo(banner)
    await server.serve(sockets=[sock])


def _program() -> str:
    """Returns how to call this command from the current folder (e.g. ``.venv/bin/bicameral``)."""
    script = Path(sys.executable).parent / "bicameral"
    if not script.exists():
        return "bicameral"
    with contextlib.suppress(ValueError):
        return shlex.quote(str(script.relative_to(Path.cwd())))
    return shlex.quote(str(script))


def _token_help(settings: Settings, base: str) -> None:
    data_dir = shlex.quote(str(settings.data_dir))
    typer.echo("  tokens:    commands and queries need a bearer token; get one with")
    typer.echo(
        f"             TOKEN=$({_program()} token issue --subject me --roles admin "
        f"--data-dir {data_dir})"
    )
    typer.echo(f'             curl -H "Authorization: Bearer $TOKEN" {base}/...')


@app.command()
def up(
    port: PortOpt = None,
    host: HostOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
    worker_channel: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run every service and every role: the API here, the workers in a child process."""
    from bicameral.runtime.workers import WorkerProcess, tell_appends, worker_command

    try:
        settings = settings_from(config, port=port, host=host, data_dir=data_dir, app=app_path)
        services = load_services(settings.app)
        if worker_channel is not None:
            _work_for_parent(
                Node(settings, services, WORKER_ROLES, worker=up_worker()), worker_channel
            )
            return
        shared = not _in_memory(settings, services)  # memory backends stay in one process
        node = Node(settings, services, API_ROLES if shared else ROLES)
    except BicameralError as exc:
        raise fail(exc.detail) from None
    if shared:
        args = ["--data-dir", str(settings.data_dir.resolve())]
        args += ["--config", str(config)] if config is not None else []
        args += ["--app", app_path] if app_path is not None else []
        notifiers = [runtime.notifier for runtime in node.runtimes.values()]
        node.companion = process = WorkerProcess(worker_command(args), notifiers)
        tell_appends(node, process)
    serve_http(node, settings, banner=True)


def _in_memory(settings: Settings, services: list[Service]) -> bool:
    """Returns whether a backend of ``services`` lives in this process's memory."""
    urls = [settings.transport]
    for service in services:
        own = settings.service(service.name)
        urls += [own.events_url, own.reads_url]
    return any(url.startswith("memory:") for url in urls)


def _work_for_parent(node: Node, channel: str) -> None:
    """Runs the worker roles of ``node`` for the ``bicameral up`` at the end of ``channel``."""
    import signal

    import uvicorn

    from bicameral.runtime.logs import configure_logging
    from bicameral.runtime.workers import serve_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops this process
    configure_logging(roles=",".join(WORKER_ROLES))
    loop = uvicorn.Config(app="", loop="auto").get_loop_factory()  # uvloop, as the API runs
    with asyncio.Runner(loop_factory=loop) as runner:
        runner.run(serve_parent(node, channel))


@app.command()
def serve(
    service: Annotated[str, typer.Option(help="The service to run.")],
    role: Annotated[list[str], typer.Option(help=f"Role(s): {', '.join(ROLES)}.")],
    port: PortOpt = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Port of /health, /health/ready and /metrics of a process of worker roles only "
            "(0: any free port).",
            show_default="[metrics] in the config, else any free port",
        ),
    ] = None,
    host: HostOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Run some roles of one service in this process (any number of copies may run)."""
    try:
        settings = settings_from(config, port=port, host=host, data_dir=data_dir, app=app_path)
        services = load_services(settings.app)
        chosen = [s for s in services if s.name == service]
        if not chosen:
            raise ConfigurationError(f"no service {service!r}")
        node = Node(settings, chosen, role)
        roles = next(iter(node.runtimes.values())).roles
        if metrics_port is None:
            metrics_port = settings.metrics_port(roles)
        elif not 0 <= metrics_port <= 65535:
            raise ConfigurationError(f"bad --metrics-port {metrics_port}: not a TCP port")
    except BicameralError as exc:
        raise fail(exc.detail) from None
    if {"command-api", "query-api"} & roles:
        # Behind the proxy (deploy/nginx.conf) every API process documents the whole API.
        serve_http(node, settings, banner=False, api=services)
        return
    what = f"running {service} {', '.join(sorted(roles))}"
    serve_operations(node, settings, metrics_port or 0, what=what)


def _existing(settings: Settings, services: list[Any]) -> None:
    from bicameral.runtime.backends import sqlite_path

    for service in services:
        url = settings.service(service.name).events_url
        if url.startswith("sqlite:") and not Path(sqlite_path(url)).exists():
            raise ConfigurationError(
                f"no data for {service.name} at {sqlite_path(url)} (start it with bicameral up)"
            )


async def open_node(settings: Settings, service: str | list[str] | None) -> Node:
    """Returns a Node of ``service`` (or of those named, or every service) with no roles, its
    backends started."""
    services = load_services(settings.app)
    if service is not None:
        wanted = [service] if isinstance(service, str) else service
        unknown = sorted(set(wanted) - {s.name for s in services})
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            raise ConfigurationError(f"no service {names}")
        services = [s for s in services if s.name in wanted]
    _existing(settings, services)
    node = Node(settings, services, roles=())
    for backend in node.factory.started():
        await backend.start()
    return node


@events_app.command("tail")
def events_tail(
    service: Annotated[
        list[str] | None,
        typer.Option(help="Only this service (repeat for more).", show_default="every service"),
    ] = None,
    stream: Annotated[
        str | None, typer.Option(help="Only this stream id.", show_default="every stream")
    ] = None,
    event_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="Only this event type (inventory.StockReceived[.v1] or name).",
            show_default="every type",
        ),
    ] = None,
    principal: Annotated[
        str | None,
        typer.Option(
            help="Only events by this subject, or done for them.", show_default="anyone's"
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest events, in all.")] = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new ones.", show_default="off")
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Print the newest events of every service by time, oldest first: time, service,
    position, type, stream, actor."""
    from bicameral.runtime.history import EventFilter, Found, History, actor

    if limit < 0:
        raise fail(f"--limit must be 0 or more, not {limit}")

    def show(found: list[Found], node: Node) -> None:
        for name, stored in found:
            env = _readable(stored, node.runtimes[name].service.registry)
            typer.echo(
                f"{env.time:%Y-%m-%d %H:%M:%S.%f}"[:-3]
                + f" {name:<10} {env.position:>8} {env.type:<36} {env.subject:<28} "
                + actor(env.principal)
                + (f"  (stored as {stored.type})" if env is not stored else "")
            )

    async def work() -> None:
        settings = settings_from(config, data_dir=data_dir, app=app_path)
        node = await open_node(settings, service or None)
        try:
            history = History(node, EventFilter(stream or "", event_type or "", principal or ""))
            show(await history.newest(limit), node)
            while follow:
                await asyncio.sleep(0.5)
                show(await history.newer(), node)
        finally:
            await node.stop()

    run(work)


def _readable(env: Any, registry: Any) -> Any:
    """Returns ``env`` upcast to its current class, or as stored when the code cannot read it."""
    from bicameral.envelope import upcast

    try:
        return upcast(env, registry)
    except BicameralError:
        return env


@app.command()
def check(
    service: Annotated[
        str | None, typer.Option(help="Only this service.", show_default="every service")
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Check that the code can read every event type stored in the logs (exit 1 if not)."""

    async def work() -> list[Any]:
        from bicameral.runtime.check import unreadable_types

        settings = settings_from(config, data_dir=data_dir, app=app_path)
        node = await open_node(settings, service)
        try:
            found: list[Any] = []
            for rt in node.runtimes.values():
                found += await unreadable_types(rt.service, rt.events)
            return found
        finally:
            await node.stop()

    found = run(work)
    if found:
        for item in found:
            typer.echo(f"bicameral: error: cannot read {item}", err=True)
        names = ", ".join(item.type for item in found)
        typer.echo(
            f"bicameral: error: the logs hold event types the code cannot read: {names}", err=True
        )
        raise typer.Exit(1)
    typer.echo("ok: the code can read every event type in the logs")


PartitionsOpt = Annotated[
    bool,
    typer.Option(
        "--partitions", help="Also a row per partition of each projection.", show_default="off"
    ),
]


def _print_status(title: str, rows: list[Any]) -> None:
    typer.echo(
        f"{'service':<10} {title:<40} {'position':>9} {'head':>9} "
        f"{'lag_events':>10} {'lag_seconds':>11} {'parked':>7}  owner"
    )
    for row in rows:
        extra = row.owner or "-"
        if getattr(row, "state", "").startswith("building"):
            extra = f"{row.owner} {row.state}" if row.owner else row.state
        typer.echo(
            f"{row.service:<10} {row.name:<40} {row.position:>9} {row.head:>9} "
            f"{row.lag:>10} {row.lag_seconds:>11.1f} {row.parked:>7}  {extra}"
        )


@projections_app.command("status")
def projections_status(
    partitions: PartitionsOpt = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Print each projection's checkpoint, its source's head, the lag and the owner."""

    async def work() -> None:
        from bicameral.runtime.status import projection_status

        settings = settings_from(config, data_dir=data_dir, app=app_path)
        node = await open_node(settings, None)
        try:
            rows = await projection_status(node, partitions)
        finally:
            await node.stop()
        _print_status("checkpoint", rows)

    run(work)


def _owner_node(settings: Settings, name: str, service: str | None) -> Node:
    """Returns a node of no role over the service owning projection ``name`` (data must exist).

    An unknown projection is one line naming the known ones, and exit 2.
    """
    from bicameral.runtime.rebuild import UnknownProjectionError, owner_of

    services = load_services(settings.app)
    if service is not None and not any(s.name == service for s in services):
        raise ConfigurationError(f"no service {service!r}")
    try:
        owner = owner_of(services, name, service)
    except UnknownProjectionError as exc:
        typer.echo(f"bicameral: error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    _existing(settings, [owner])
    return Node(settings, [owner], roles=())


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str, typer.Argument(help="The projection to rebuild, e.g. products.")],
    service: Annotated[
        str | None,
        typer.Option(help="The service owning it.", show_default="the one that has it"),
    ] = None,
    wait: Annotated[
        bool | None,
        typer.Option(
            "--wait/--no-wait",
            help="Show progress until the switch.",
            show_default="--wait on a terminal",
        ),
    ] = None,
    keep_old: Annotated[
        bool,
        typer.Option(
            "--keep-old/--drop-old",
            help="Keep the replaced version until drop-retired, or drop it after "
            "the switch (once every query process moved on).",
        ),
    ] = True,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Build the code's projection again as a new version beside the live one, then switch.

    Running projectors do the work; with none running, this command does it. Ctrl-C stops
    watching, never the rebuild.
    """
    from bicameral.cli.rebuild import rebuild_command

    try:
        node = _owner_node(settings_from(config, data_dir=data_dir, app=app_path), name, service)
    except BicameralError as exc:
        raise fail(exc.detail) from None
    code = rebuild_command(node, name, wait, keep_old)
    if code:
        raise typer.Exit(code)


@projections_app.command("drop-retired")
def projections_drop_retired(
    name: Annotated[str, typer.Argument(help="The projection whose old versions to drop.")],
    service: Annotated[
        str | None,
        typer.Option(help="The service owning it.", show_default="the one that has it"),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Drop the tables and checkpoints of a projection's retired (or failed) versions."""
    from bicameral.cli.rebuild import drop_retired_command

    try:
        node = _owner_node(settings_from(config, data_dir=data_dir, app=app_path), name, service)
    except BicameralError as exc:
        raise fail(exc.detail) from None
    code = drop_retired_command(node, name)
    if code:
        raise typer.Exit(code)


@app.command()
def status(
    partitions: PartitionsOpt = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Print every consumer (projection, relay, reaction runner): its checkpoint, its
    source's head, the lag in events and seconds, and the process holding it."""

    async def work() -> None:
        from bicameral.runtime.status import command_side_status, projection_status

        settings = settings_from(config, data_dir=data_dir, app=app_path)
        node = await open_node(settings, None)
        try:
            rows = await projection_status(node, partitions) + await command_side_status(node)
        finally:
            await node.stop()
        _print_status("consumer", rows)

    run(work)


@token_app.command("issue")
def token_issue(
    subject: Annotated[str, typer.Option(help="Who the token names (its sub claim).")],
    roles: Annotated[
        str,
        typer.Option(help="Comma-separated roles, e.g. admin or customer.", show_default="none"),
    ] = "",
    ttl: Annotated[str, typer.Option(help="How long it is valid: 90s, 15m, 1h, 7d.")] = "1h",
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print a token signed with the embedded key of the data dir (the server makes it)."""
    from bicameral.runtime.auth import AuthSettings, embedded_key
    from bicameral.security.tokens import issue_token, parse_ttl

    try:
        settings = settings_from(config, data_dir=data_dir)
        auth = AuthSettings.from_mapping(settings.auth)
        if auth.jwks_file is not None:
            raise ConfigurationError("auth uses a JWKS file: get tokens from its identity provider")
        lifetime = parse_ttl(ttl)
        token = issue_token(
            embedded_key(settings, create=False),
            subject=subject,
            roles=[r.strip() for r in roles.split(",") if r.strip()],
            ttl=lifetime,
            issuer=auth.issuer,
            audience=auth.audience,
        )
    except BicameralError as exc:
        raise fail(exc.detail) from None
    typer.echo(token)


@app.command()
def console(
    url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of the server (or proxy) serving /console.",
            show_default="[console] url, else http://HOST:PORT of the settings",
        ),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(help="The admin the link signs in.", show_default="your login name"),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print a one-time link that signs an admin in to the web console (valid 5 minutes)."""
    from bicameral.cli.console import console_command

    try:
        settings = settings_from(config, data_dir=data_dir)
    except BicameralError as exc:
        raise fail(exc.detail) from None
    console_command(settings, url, subject)


def main() -> None:
    """Runs the command line."""
    try:
        app()
    except BicameralError as exc:  # pragma: no cover - commands catch their own
        typer.echo(f"bicameral: error: {exc.detail}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
