"""``bicameral projections rebuild`` and ``drop-retired``: a read model rebuilt beside the live one.

The progress bar shows events folded out of the log's head, events per second and the time
left. Ctrl-C stops watching: workers go on building; work this process did stays (checkpoints)
and resumes when a projector runs or the command is run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import typer

from bicameral.errors import BicameralError
from bicameral.runtime import rebuild as rebuilds
from bicameral.runtime.node import Node
from bicameral.runtime.status import RebuildStatus, rebuild_status
from bicameral.versions import State, drop_old, drop_retired, read_catalog

__all__ = ["drop_retired_command", "rebuild_command"]


def _say(text: str) -> None:
    typer.echo(f"bicameral: {text}", err=True)


class _Bar:
    """A rich progress bar on stderr, fed with rebuild statuses."""

    def __init__(self, title: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed or 0:,.0f} events/s")

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task(title, total=None)

    @contextlib.contextmanager
    def shown(self) -> Iterator[_Bar]:
        with self._progress:
            yield self

    def __call__(self, status: RebuildStatus) -> None:
        done = status.progress
        self._progress.update(self._task, completed=done.done, total=max(done.total, 1))


def _describe(status: RebuildStatus) -> str:
    return f"version {status.version.number}, {status.progress.fraction:.0%}"


async def _rebuild(node: Node, name: str, wait: bool, keep_old: bool) -> int:
    rt, projection = rebuilds.find_projection(node, name)
    version, started = await rebuilds.start(rt, projection)
    if not keep_old:
        await drop_old(rt.reads, name, version.number)
    first = await rebuild_status(rt, projection, version.number)
    if started:
        _say(
            f"rebuilding {name} ({rt.name}) as version {version.number} beside the live "
            f"version {first.live}"
        )
    else:
        _say(f"a rebuild of {name} is already in progress ({_describe(first)})")
    working = await rebuilds.workers_running(rt)
    if not wait:
        where = "the projector workers" if working else "a projector (bicameral up or serve)"
        _say(f"{where} build it; watch it with: bicameral projections status")
        return 0
    bar = _Bar(f"{name} v{version.number}")
    try:
        with bar.shown():
            if working:
                final = await rebuilds.watch(rt, projection, version.number, bar)
            else:
                final = await rebuilds.build(rt, projection, version.number, bar)
    except asyncio.CancelledError:
        if working:
            _say(f"stopped watching; the workers go on building {name} version {version.number}")
        else:
            _say(
                f"stopped; the rebuild of {name} resumes from its checkpoints when a projector "
                f"runs, or with: bicameral projections rebuild {name}"
            )
        return 130
    if final.blocked:
        consumer = projection.checkpoint(projection.sources(rt.name)[0], version.number)
        typer.echo(
            f"bicameral: error: {name} version {version.number} is caught up but {final.parked} "
            f"event(s) of it are parked; it switches once they are retried or skipped "
            f"(bicameral dlq list --consumer {consumer}); the live version {final.live} keeps "
            "serving",
            err=True,
        )
        return 1
    if final.version.state == State.FAILED:
        reason = f": {final.error}" if final.error else " (see the projector's log)"
        typer.echo(
            f"bicameral: error: the rebuild of {name} version {version.number} failed after "
            f"position {final.version.failed_at}{reason}; the live version {final.live} "
            "keeps serving",
            err=True,
        )
        return 1
    if keep_old:
        _say(
            f"{name} version {version.number} is live; drop the version it replaced with: "
            f"bicameral projections drop-retired {name}"
        )
    elif working:
        _say(f"{name} version {version.number} is live; the projectors drop the old one soon")
    else:
        dropped = await drop_retired(rt.reads, projection)
        _say(f"{name} version {version.number} is live; dropped version(s) {dropped}")
    return 0


def rebuild_command(node: Node, name: str, wait: bool | None, keep_old: bool = True) -> int:
    """Runs ``projections rebuild``; returns the exit code."""
    waiting = sys.stderr.isatty() if wait is None else wait
    return _run(_rebuild(node, name, waiting, keep_old), node)


async def _drop(node: Node, name: str) -> int:
    rt, projection = rebuilds.find_projection(node, name)
    dropped = await drop_retired(rt.reads, projection)
    catalog = await read_catalog(rt.reads)
    live = catalog.live(name)
    if dropped:
        listed = ", ".join(str(n) for n in dropped)
        typer.echo(f"dropped {name} version(s) {listed}; version {live} is live")
    else:
        typer.echo(f"{name} has no retired version; version {live} is live")
    return 0


def drop_retired_command(node: Node, name: str) -> int:
    """Runs ``projections drop-retired``; returns the exit code."""
    return _run(_drop(node, name), node)


def _run(work: Any, node: Node) -> int:
    async def main() -> int:
        for backend in node.factory.started():
            await backend.start()
        try:
            return int(await work)
        finally:
            await node.stop()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    except rebuilds.UnknownProjectionError as exc:
        typer.echo(f"bicameral: error: {exc.detail}", err=True)
        return 2
    except BicameralError as exc:
        typer.echo(f"bicameral: error: {exc.detail}", err=True)
        return 1
