"""The worker roles of ``bicameral up`` in a child process, off the API's event loop.

``bicameral up`` serves the API roles (``command-api``, ``query-api``) in its own process and
runs the worker roles (``projector``, ``relay``, ``reactions``) of every service in one child
process it supervises: restarted when it dies, stopped when ``up`` stops. The two talk over a
pair of pipes, one line per message:

- the parent asks ``metrics`` (the child answers ``metrics <n>`` and its Prometheus text) and
  ``ready`` (``ready <n>`` and a JSON map of what keeps it from working), or says ``stop``;
- the child says ``moved`` whenever a projector committed, so a query waiting on a consistency
  token in the parent reads the checkpoints again at once rather than at its next poll; the
  parent says ``appended`` after its commands appended, so the child's relay and projectors
  read an embedded (SQLite) log at once rather than at its next poll (PostgreSQL announces its
  commits itself).

The child's end of the parent's pipe closes when the parent dies, however it dies (SIGKILL
too): the child then stops its workers and exits, so a restarted ``up`` never finds an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from bicameral import metrics
from bicameral.consistency import Notifier
from bicameral.errors import BicameralError
from bicameral.runtime.heap import settle
from bicameral.runtime.node import Node
from bicameral.workers.meters import CONSUMERS
from bicameral.workers.retry import Backoff

__all__ = [
    "PROCESS_LABEL",
    "MergedMetrics",
    "WorkerProcess",
    "labelled",
    "serve_parent",
    "tell_appends",
    "worker_command",
]

log = logging.getLogger("bicameral.runtime.workers")

_ANSWER_WITHIN = 5.0
_STOP_WITHIN = 10.0
_HEALTHY_FOR = 60.0
PROCESS_LABEL = "process"
"""The label every metric of the child carries (``process="workers"``), so no series of the
child's can collide with one of the parent's."""


class WorkerProcess:
    """Runs ``command`` (``bicameral up``'s worker half) as a child and keeps it running.

    ``notifiers`` (the API services') are notified whenever the child's projectors committed;
    ``appended`` tells the child that commands appended (``tell_appends`` wires it to the
    command buses). The command is given ``--worker-channel R,W``: the file descriptors it
    reads requests from and writes to.
    """

    def __init__(self, command: Sequence[str], notifiers: Sequence[Notifier]) -> None:
        self.command = list(command)
        self.notifiers = list(notifiers)
        self._proc: asyncio.subprocess.Process | None = None
        self._requests: asyncio.StreamWriter | None = None
        self._answers: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._started: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._asking = asyncio.Lock()
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._wake_pending = False
        self.restarts = 0

    @property
    def running(self) -> bool:
        """Returns whether the child is running now."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Starts the child, and the task that restarts it when it dies, once it started its
        workers; raises BicameralError, stopping it, if it could not (one line, as ``up``'s
        own start-up failures)."""
        await self._spawn()
        kind, body = await self._started.get()
        if kind != "started":
            await self.stop()
            code = self._proc.returncode if self._proc is not None else None
            raise BicameralError(body.decode() or f"the worker process exited with {code}")
        self._watch = asyncio.create_task(self._keep_running())

    def moved(self) -> None:
        """Wakes the waiters of every notifier: the child's projectors committed."""
        for notifier in self.notifiers:
            notifier.notify()

    def appended(self) -> None:
        """Tells the child that commands appended here (unless a message is on its way)."""
        if self._requests is not None and self.running and not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._send_wake)

    def _send_wake(self) -> None:
        self._wake_pending = False
        if self._requests is not None and self.running:
            with contextlib.suppress(OSError, RuntimeError):
                self._requests.write(b"appended\n")

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                "--worker-channel",
                f"{child_reads},{child_writes}",
                pass_fds=(child_reads, child_writes),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            os.close(child_reads)
            os.close(child_writes)
        self._answers = asyncio.Queue()
        self._started = asyncio.Queue()
        if self._requests is not None:  # the pipe of a child that died
            with contextlib.suppress(OSError, RuntimeError):
                self._requests.close()
        self._requests = await _writer(loop, os.fdopen(parent_writes, "wb", buffering=0))
        reader = await _reader(loop, os.fdopen(parent_reads, "rb", buffering=0))
        self._listening = asyncio.create_task(self._listen(reader))

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Reads the child's messages until its pipe closes."""
        answers, started = self._answers, self._started
        while message := await _read(reader):
            if message[0] == "moved":
                self.moved()
            elif message[0] in ("started", "failed"):
                await started.put(message)
            else:
                await answers.put(message)
        await answers.put(("", b""))
        await started.put(("", b""))

    async def _keep_running(self) -> None:
        backoff = Backoff(cap=30.0)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            assert self._proc is not None
            began = loop.time()
            code = await self._proc.wait()
            if self._stopping:
                return
            if loop.time() - began > _HEALTHY_FOR:
                backoff.reset()
            delay = backoff.delay()
            log.error("the worker process exited with %s; starting it again in %.1fs", code, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self.restarts += 1
            with contextlib.suppress(OSError):
                await self._spawn()

    async def ask(self, kind: str) -> bytes | None:
        """Returns the child's answer to ``kind`` (``metrics``, ``ready``); None without one."""
        if not self.running or self._requests is None:
            return None
        async with self._asking:
            try:
                self._requests.write(f"{kind}\n".encode())
                await self._requests.drain()
                got, body = await asyncio.wait_for(self._answers.get(), _ANSWER_WITHIN)
            except (OSError, RuntimeError, TimeoutError):
                return None
            return body if got == kind else None

    async def unready(self) -> dict[str, str]:
        """Returns what keeps the child from working: name -> reason (empty when it works)."""
        answer = await self.ask("ready")
        if answer is None:
            return {"workers": "the worker process is not answering"}
        return {f"workers.{k}": str(v) for k, v in orjson.loads(answer).items()}

    async def families(self) -> list[Metric]:
        """Returns the child's metrics, each sample labelled ``process="workers"``."""
        answer = await self.ask("metrics")
        return [] if answer is None else labelled(answer.decode())

    async def registry(self) -> MergedMetrics:
        """Returns this process's metrics and the child's, as one Prometheus collector."""
        return MergedMetrics(await self.families())

    async def stop(self) -> None:
        """Asks the child to stop, waits for it (killing it if it takes too long)."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        proc, requests = self._proc, self._requests
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(OSError, RuntimeError):  # the child is going already
            if requests is not None:
                requests.write(b"stop\n")
                await requests.drain()
        try:
            await asyncio.wait_for(proc.wait(), _STOP_WITHIN)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if requests is not None:
            with contextlib.suppress(OSError, RuntimeError):
                requests.close()


class _Tee(Notifier):
    """A notifier that also calls ``also`` on every notify (waits are ``inner``'s)."""

    def __init__(self, inner: Notifier, also: Callable[[], None]) -> None:
        super().__init__()
        self.inner = inner
        self.also = also

    def notify(self) -> None:
        """Wakes ``inner``'s waiters and calls ``also``."""
        self.inner.notify()
        self.also()

    def mark(self) -> asyncio.Event:
        """Returns ``inner``'s next wake-up."""
        return self.inner.mark()

    async def wait(self, timeout: float, mark: asyncio.Event | None = None) -> None:
        """Returns after ``inner``'s next notify (since ``mark``) or ``timeout`` seconds."""
        await self.inner.wait(timeout, mark)


def tell_appends(node: Node, process: WorkerProcess) -> None:
    """Makes every command bus of ``node`` whose event store can be woken tell ``process``
    when it appended; a store that announces its own commits (PostgreSQL) has no ``wake``,
    and the child would do nothing with the message."""
    for runtime in node.runtimes.values():
        if getattr(runtime.events, "wake", None) is not None:
            runtime.commands.notifier = _Tee(runtime.notifier, process.appended)


def labelled(text: str) -> list[Metric]:
    """Returns the metric families of Prometheus ``text``, each sample labelled
    ``process="workers"``."""
    found = []
    for family in text_string_to_metric_families(text):
        family.samples = [
            Sample(s.name, {**s.labels, PROCESS_LABEL: "workers"}, *s[2:]) for s in family.samples
        ]
        found.append(family)
    return found


class MergedMetrics:
    """This process's metrics and those of its worker process, one family per name."""

    def __init__(self, theirs: Iterable[Metric]) -> None:
        self.theirs = list(theirs)

    def collect(self) -> list[Metric]:
        """Returns every family of this process, with the worker process's samples added."""
        merged: dict[str, Metric] = {}
        for family in [*REGISTRY.collect(), *self.theirs]:
            found = merged.get(family.name)
            if found is None:
                merged[family.name] = family
            elif found.type == family.type:
                found.samples = [*found.samples, *family.samples]
        return list(merged.values())


async def serve_parent(node: Node, channel: str) -> None:
    """Runs ``node`` (the worker roles) for the parent at the other end of ``channel``
    (``R,W`` file descriptors) until it says ``stop`` or goes away."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = (int(fd) for fd in channel.split(","))
    requests = await _reader(loop, os.fdopen(read_fd, "rb", buffering=0))
    answers = await _writer(loop, os.fdopen(write_fd, "wb", buffering=0))
    try:
        await node.start()
    except BicameralError as exc:  # the parent says it, once
        _send(answers, "failed", exc.detail.encode())
        await answers.drain()
        await node.stop()
        return
    settle()  # what starting made stays out of the garbage collector's scans
    _send(answers, "started", b"")
    forwarders = [
        asyncio.create_task(_forward(rt.notifier, answers)) for rt in node.runtimes.values()
    ]
    try:
        while message := await _read(requests, body=False):
            kind = message[0]
            if kind == "stop":
                break
            if kind == "appended":
                for runtime in node.runtimes.values():
                    wake = getattr(runtime.events, "wake", None)
                    if wake is not None:
                        wake()
                continue
            if kind == "metrics":
                await CONSUMERS.refresh()
                metrics.READY.set(0 if await node.unready() else 1)
                _send(answers, "metrics", generate_latest())
            elif kind == "ready":
                _send(answers, "ready", orjson.dumps(await node.unready()))
            await answers.drain()
    finally:
        for task in forwarders:
            task.cancel()
        await node.stop()


async def _forward(notifier: Notifier, answers: asyncio.StreamWriter) -> None:
    """Says ``moved`` after each notify of ``notifier`` (several close together as one)."""
    while True:
        await notifier.mark().wait()
        answers.write(b"moved\n")
        await answers.drain()


def _send(out: asyncio.StreamWriter, kind: str, body: bytes) -> None:
    out.write(f"{kind} {len(body)}\n".encode() + body)


async def _read(reader: asyncio.StreamReader, *, body: bool = True) -> tuple[str, bytes] | None:
    """Returns the next message (kind and body), None once the pipe closed."""
    try:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            return None
        kind, _, size = line.decode().strip().partition(" ")
        data = await reader.readexactly(int(size)) if body and size else b""
    except (OSError, ValueError, asyncio.IncompleteReadError):
        return None
    return kind, data


async def _reader(loop: asyncio.AbstractEventLoop, pipe: Any) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def _writer(loop: asyncio.AbstractEventLoop, pipe: Any) -> asyncio.StreamWriter:
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    return asyncio.StreamWriter(transport, protocol, None, loop)


def worker_command(args: Sequence[str]) -> list[str]:
    """Returns the command line of ``bicameral up``'s worker process, given ``up``'s options."""
    return [sys.executable, "-m", "bicameral.cli.main", "up", *args]
