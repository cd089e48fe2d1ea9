"""``bicameral dlq``: see, retry and skip parked events (see ``bicameral.parking``).

Takes the same ``--config`` / ``--data-dir`` as ``bicameral status``, so it reads the data of
``make run`` or the servers of a TOML file. Failures are one line on stderr: exit 2 for an
unknown sequence id or a bad argument (an unknown ``--service``), 1 for anything else (a
retry that fails again included).
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from bicameral.envelope import to_cloudevent
from bicameral.errors import BicameralError, MessageError, NotFoundError
from bicameral.parking import ParkedSequence, Skipped
from bicameral.runtime.dlq import DeadLetters
from bicameral.workers.parked import RetryResult

__all__ = ["dlq_app", "operator", "sequence_json"]

T = TypeVar("T")

dlq_app = typer.Typer(
    help="Parked events: what a consumer could not handle, kept in order until retried or skipped.",
    no_args_is_help=True,
)

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
    typer.Option("--app", help="Services, as module:attr.", show_default="the one installed app"),
]
ServiceOpt = Annotated[
    str | None, typer.Option("--service", help="Only this service.", show_default="every service")
]
ConsumerOpt = Annotated[
    str | None,
    typer.Option(
        "--consumer",
        help="Only this consumer (a projection or reaction, or its service).",
        show_default="every consumer",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of text.", show_default="off")
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"bicameral: error: {message}", err=True)
    return typer.Exit(code)


def _with_letters(
    config: Path | None,
    data_dir: Path | None,
    app_path: str | None,
    work: Callable[[DeadLetters], Awaitable[T]],
) -> T:
    """Runs ``work`` with the dead letters of the configured services; one line on failure."""
    from bicameral.cli.main import open_node, settings_from

    async def main() -> T:
        settings = settings_from(config, data_dir=data_dir, app=app_path)
        node = await open_node(settings, None)
        try:
            return await work(DeadLetters(node))
        finally:
            await node.stop()

    try:
        return asyncio.run(main())
    except (NotFoundError, MessageError) as exc:
        raise _fail(exc.detail, 2) from None
    except BicameralError as exc:
        raise _fail(exc.detail) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def operator() -> str:
    """Returns who runs this command, for the skip audit: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _time(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}"


def _line(seq: ParkedSequence) -> str:
    error = f"{seq.error}: {seq.message}".replace("\n", " ")
    return (
        f"{seq.id}  {seq.service:<10} {seq.consumer:<36} {seq.key:<28} {seq.first_position:>8} "
        f"{len(seq.events):>6} {seq.event_type:<36} {seq.attempts:>3} "
        f"{_time(seq.first_failed)}  {_time(seq.last_failed)}  {error}"
    )


_HEADER = (
    f"{'id':<16}  {'service':<10} {'consumer':<36} {'stream':<28} {'position':>8} {'events':>6} "
    f"{'event type':<36} {'try':>3} {'first failed':<19}  {'last failed':<19}  error"
)


def _skip_line(record: Skipped) -> str:
    return (
        f"{record.id}  {record.service:<10} {record.consumer:<36} {record.key:<28} "
        f"{record.first_position:>8} {len(record.event_ids):>6}  {_time(record.at)}  "
        f"{record.by}: {record.reason}"
    )


def sequence_json(seq: ParkedSequence) -> dict[str, Any]:
    """Returns a sequence with its events (CloudEvents JSON) and its last traceback."""
    return {
        **seq.summary(),
        "traceback": seq.traceback,
        "parked_events": [to_cloudevent(e) for e in seq.events],
    }


def _echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value).decode())


@dlq_app.command("list")
def dlq_list(
    service: ServiceOpt = None,
    consumer: ConsumerOpt = None,
    as_json: JsonOpt = False,
    skipped: Annotated[
        bool,
        typer.Option(
            "--skipped",
            help="Show the records of skipped sequences instead.",
            show_default="off",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Print one line per parked sequence (with --json, one JSON array)."""

    async def work(letters: DeadLetters) -> None:
        if skipped:
            records = await letters.skipped(service, consumer)
            if as_json:
                _echo_json([r.to_dict() for r in records])
                return
            for record in records:
                typer.echo(_skip_line(record))
            return
        found = [f.sequence for f in await letters.sequences(service, consumer)]
        if as_json:
            _echo_json([seq.summary() for seq in found])
            return
        typer.echo(_HEADER)
        for seq in found:
            typer.echo(_line(seq))

    _with_letters(config, data_dir, app_path, work)


@dlq_app.command("show")
def dlq_show(
    sequence: Annotated[str, typer.Argument(help="The sequence id (from dlq list).")],
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Print a parked sequence: its events (payload and metadata) and its last traceback."""

    async def work(letters: DeadLetters) -> None:
        seq = (await letters.find(sequence)).sequence
        if as_json:
            _echo_json(sequence_json(seq))
            return
        typer.echo(_HEADER)
        typer.echo(_line(seq))
        for env in seq.events:
            typer.echo(f"\n{env.position} {env.type} {env.subject} {env.id} {_time(env.time)}")
            typer.echo(f"  data:     {orjson.dumps(env.data).decode()}")
            typer.echo(f"  metadata: {orjson.dumps(env.metadata).decode()}")
        typer.echo("\nlast failure:")
        typer.echo(seq.traceback.rstrip() or f"{seq.error}: {seq.message}")

    _with_letters(config, data_dir, app_path, work)


def _retried(result: RetryResult) -> str:
    return f"retried {result.sequence}: {result.applied} event(s) applied, none left parked"


def _failed(result: RetryResult) -> str:
    failure = result.failure
    why = f"{failure.error}: {failure.message}" if failure else "unknown error"
    why = why.replace("\n", " ")
    return (
        f"sequence {result.sequence} failed again after {result.applied} event(s) applied: "
        f"{why}; {result.left} event(s) still parked"
    )


@dlq_app.command("retry")
def dlq_retry(
    sequence: Annotated[str | None, typer.Argument(help="The sequence id (from dlq list).")] = None,
    retry_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Retry every parked sequence (of --consumer).", show_default="off"
        ),
    ] = False,
    service: ServiceOpt = None,
    consumer: ConsumerOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Run a parked sequence, in order, through the code deployed now; what succeeds is removed.

    What fails again stays parked with one more attempt counted, and the exit code is 1.
    """
    if (sequence is None) == (not retry_all):
        raise _fail("give a sequence id or --all (not both)", 2)

    async def work(letters: DeadLetters) -> list[RetryResult]:
        if sequence is not None:
            return [await letters.retry(sequence)]
        return await letters.retry_all(service, consumer)

    results = _with_letters(config, data_dir, app_path, work)
    failed = [r for r in results if not r.ok]
    for result in results:
        if result.ok:
            typer.echo(_retried(result))
    if retry_all and not results:
        typer.echo("nothing parked")
    if len(failed) == 1:
        raise _fail(_failed(failed[0]))
    if failed:
        for result in failed:
            typer.echo(_failed(result), err=True)
        raise _fail(f"{len(failed)} of {len(results)} sequences failed again")


@dlq_app.command("skip")
def dlq_skip(
    sequence: Annotated[str, typer.Argument(help="The sequence id (from dlq list).")],
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="Why it is dropped (kept in the audit).", show_default="none"
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    app_path: AppOpt = None,
) -> None:
    """Drop a parked sequence on purpose; who, when and why is recorded (dlq list --skipped)."""
    if not reason or not reason.strip():
        raise _fail("dlq skip needs --reason TEXT: why the events may be dropped")
    given = reason

    async def work(letters: DeadLetters) -> Skipped:
        return await letters.skip(sequence, given, operator())

    record = _with_letters(config, data_dir, app_path, work)
    typer.echo(
        f"skipped {record.id}: {len(record.event_ids)} event(s) of {record.consumer} "
        f"{record.key} ({record.reason})"
    )
