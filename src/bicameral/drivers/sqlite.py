"""SQLite connections as every SQLite adapter opens them (WAL mode, autocommit, waiting on
locks), and the writer thread that commits an adapter's writes off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from bicameral.errors import BackendError
from bicameral.files import private_file

__all__ = ["Job", "Writer", "connect"]

log = logging.getLogger("bicameral.drivers.sqlite")

Job = Callable[[sqlite3.Connection], Any]
"""A write run by the writer thread inside the batch's transaction; returns its result."""


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """Returns a connection to ``path`` in WAL mode, autocommit, waiting on locks.

    A new database file is made with mode 0600 (in folders of mode 0700), so its ``-wal`` and
    ``-shm`` files are private too.
    """
    if path != ":memory:" and not path.startswith("file:"):
        private_file(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    for attempt in range(100):
        # Switching a new file to WAL takes an exclusive lock that the busy timeout does not
        # wait for: processes opening one file at once retry here.
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                conn.close()
                raise
            time.sleep(0.05)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Writer(threading.Thread):
    """Runs queued write jobs on one connection, many jobs to a transaction (group commit).

    Each job runs in its own savepoint, so one job's error never spoils another's; whatever a
    batch throws fails that batch's jobs only, and the writer goes on.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        max_batch: int,
        max_queue: int,
        name: str = "bicameral-sqlite-writer",
    ) -> None:
        super().__init__(daemon=True, name=name)
        self.conn = conn
        self.max_batch = max_batch
        self.jobs: queue.Queue[Any] = queue.Queue(max_queue)

    def submit(self, job: Job) -> asyncio.Future[Any]:
        """Returns the future of ``job``'s result; raises queue.Full when the queue is full."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.jobs.put_nowait((job, loop, future))
        return future

    async def stop(self) -> None:
        """Returns once the jobs queued so far are done and the thread ended."""
        await asyncio.to_thread(self.jobs.put, None)
        await asyncio.to_thread(self.join)

    def run(self) -> None:
        stopping = False
        while not stopping:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._guarded(batch)

    def _guarded(self, batch: list[Any]) -> None:
        """Commits ``batch``; whatever it raises fails this batch only, and the writer goes on."""
        try:
            self._commit(batch)
        except Exception as exc:
            log.exception("sqlite write batch of %d failed", len(batch))
            failure = BackendError(f"sqlite write failed: {type(exc).__name__}: {exc}")
            for _, loop, future in batch:
                _reply(loop, future, False, failure)

    def _commit(self, batch: list[Any]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:  # a lone job needs no savepoint: its failure ends the transaction
                outcomes.append(self._alone(batch[0][0]))
            else:
                outcomes = [self._in_savepoint(fn) for fn, _, _ in batch]
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        except Exception as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if not isinstance(exc, sqlite3.Error):
                raise
            failure = BackendError(f"sqlite write failed: {exc}")
            outcomes = [(False, failure)] * len(batch)
        for (_, loop, future), (ok, value) in zip(batch, outcomes, strict=True):
            _reply(loop, future, ok, value)

    def _in_savepoint(self, fn: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
        """Runs one job of a batch; undoes its writes alone when it raises."""
        self.conn.execute("SAVEPOINT job")
        try:
            outcome = (True, fn(self.conn))
        except Exception as exc:
            self.conn.execute("ROLLBACK TO job")
            outcome = (False, exc)
        self.conn.execute("RELEASE job")
        return outcome

    def _alone(self, fn: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
        """Runs the only job of a transaction; rolls the transaction back when it raises."""
        try:
            return True, fn(self.conn)
        except Exception as exc:
            if self.conn.in_transaction:  # some errors end the transaction themselves
                self.conn.execute("ROLLBACK")
            return False, exc


def _reply(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool, value: Any
) -> None:
    with contextlib.suppress(RuntimeError):  # its event loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
