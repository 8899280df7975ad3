"""The agent's graphs compiled with a checkpointer, one set per event loop.

Checkpoints are what make a run resumable. With ``checkpoint=True`` they go to PostgreSQL when the
database URL (``db_url``, else ``SEASONED_DB_URL``) is PostgreSQL, so that any replica of a service can
continue any run (``langgraph-checkpoint-postgres``, the ``postgres`` extra); otherwise to the SQLite file
``$SEASONED_HOME/checkpoints.sqlite`` (LangGraph's SQLite saver written from the event loop, ``InlineSqliteSaver``,
in WAL mode). With ``checkpoint=False`` they stay in memory.

Every Agent of a process on one event loop shares one saver per target (one SQLite connection: one
writer, so concurrent runs never meet "database is locked"; one connection pool on PostgreSQL). The
saver is closed when the last Agent using it closes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import StateGraph
from seasoned.errors import MemoryConfigError
from seasoned.models import seasoned_home
from seasoned.settings import settings

SQLITE_BUSY_TIMEOUT_S = 60.0
SQLITE_LOOP_BUSY_MS = 20  # the longest a checkpoint write blocks the event loop on another process's lock
POSTGRES_POOL_SIZE = 16  # connections per process; a checkpoint write holds one for milliseconds
SETUP_LOCK_ID = 0x5EA5_0C4E  # pg_advisory_lock key: one replica creates the checkpoint tables at a time


@dataclass
class _Shared:
    """One saver on one loop, and the CheckpointedGraphs using it."""

    saver: Any
    close: Any  # async callable
    users: set[int] = field(default_factory=set)


# loop -> {target: _Shared}; a saver belongs to the loop that opened it (its connection does).
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def postgres_conninfo(url: str | None) -> str | None:
    """The libpq URL of a PostgreSQL SQLAlchemy URL (``postgresql+psycopg://...``), else None."""
    if not url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "postgresql":
        return None
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class CheckpointedGraphs:
    def __init__(self, builders: dict[str, StateGraph], checkpoint: bool = True, db_url: str | None = None):
        self.builders = builders
        self.checkpoint = checkpoint
        self.db_url = db_url
        self._by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def target(self) -> str:
        """Where checkpoints go: ``memory``, a PostgreSQL URL, or a SQLite file path."""
        if not self.checkpoint:
            return "memory"
        conninfo = postgres_conninfo(self.db_url or settings().db_url)
        return conninfo or str(seasoned_home() / "checkpoints.sqlite")

    async def get(self, kind: str):
        """The ``kind`` graph (``solve`` or ``task``) compiled with this loop's checkpointer."""
        graphs = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        if kind not in graphs:
            if "saver" not in graphs:
                graphs["target"] = self.target()
                graphs["saver"] = await self._acquire(graphs["target"])
            graphs[kind] = self.builders[kind].compile(checkpointer=graphs["saver"])
        return graphs[kind]

    async def _acquire(self, target: str):
        if target == "memory":
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        by_target = _SHARED.setdefault(asyncio.get_running_loop(), {})
        if target not in by_target:
            opener = _open_postgres if target.startswith("postgresql") else _open_sqlite
            saver, close = await opener(target)
            if target in by_target:  # another Agent opened it while we awaited
                await close()
            else:
                by_target[target] = _Shared(saver, close)
        shared = by_target[target]
        shared.users.add(id(self))
        return shared.saver

    async def aclose(self) -> None:
        """Let go of this loop's checkpointer; the last user closes the connection."""
        graphs = self._by_loop.pop(asyncio.get_running_loop(), {})
        target = graphs.get("target")
        by_target = _SHARED.get(asyncio.get_running_loop(), {})
        shared = by_target.get(target)
        if shared is None:
            return
        shared.users.discard(id(self))
        if not shared.users:
            del by_target[target]
            await shared.close()


async def _open_sqlite(path: str):
    def connect() -> InlineSqliteSaver:
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        saver = InlineSqliteSaver(connection)
        saver.setup()  # may wait for another process's lock: off the event loop, with the long timeout
        connection.execute(f"PRAGMA busy_timeout={SQLITE_LOOP_BUSY_MS}")
        return saver

    saver = await asyncio.to_thread(connect)

    async def close() -> None:
        with saver.lock:
            saver.conn.close()

    return saver, close


class InlineSqliteSaver(SqliteSaver):
    """LangGraph's SQLite saver with its async methods run on the event loop itself. A checkpoint write is
    one small WAL transaction (tens of microseconds): cheaper in CPU than handing it to a connection thread
    and back (``AsyncSqliteSaver`` over aiosqlite makes four thread round trips per write; ~4 ms of CPU per
    run of four steps). Same tables as ``AsyncSqliteSaver``. A write that finds another process holding the
    database's lock blocks the loop at most ``SQLITE_LOOP_BUSY_MS``, then waits asynchronously and tries
    again, for up to ``SQLITE_BUSY_TIMEOUT_S``."""

    async def aget_tuple(self, config):
        return self.get_tuple(config)

    async def alist(self, config, *, filter=None, before=None, limit=None):
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config, checkpoint, metadata, new_versions):
        return await _when_unlocked(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes, task_id, task_path=""):
        return await _when_unlocked(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id):
        return await _when_unlocked(self.delete_thread, thread_id)

    async def aget_delta_channel_history(self, *, config, channels):
        return self.get_delta_channel_history(config=config, channels=channels)


async def _when_unlocked(write, *args):
    """``write(*args)``, tried again (waiting asynchronously) while another process holds the lock."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    pause = 0.005
    while True:
        try:
            return write(*args)
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if not ("locked" in message or "busy" in message) or time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def _open_postgres(conninfo: str):
    try:
        import psycopg
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool
    except ImportError as exc:
        raise MemoryConfigError(f"SEASONED_DB_URL is PostgreSQL: checkpoints there need the postgres extra "
                                f"(pip install 'seasoned[postgres]'): {exc}") from None
    pool = AsyncConnectionPool(conninfo, min_size=1, max_size=POSTGRES_POOL_SIZE, open=False,
                               kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row})
    try:
        await pool.open(wait=True, timeout=30)
        saver = AsyncPostgresSaver(pool)
        # Replicas starting together would race to create the tables: one at a time, under a lock.
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as lock:
            await lock.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK_ID,))
            await saver.setup()
    except Exception as exc:
        await pool.close()
        if isinstance(exc, (psycopg.Error, TimeoutError)) or type(exc).__name__ == "PoolTimeout":
            raise MemoryConfigError(f"SEASONED_DB_URL: cannot keep checkpoints in PostgreSQL: {exc}") from None
        raise
    return saver, pool.close


def cut_short_step(snapshot) -> dict | None:
    """The config to fork a resumed run from when its last step was cut short without a trace LangGraph
    resumes: a task cancelled after writing part of its output (its state update without the ``Send``s of
    its edge) leaves an error and no next node, so continuing would end the run unfinished. Such a step
    is run again from the checkpoint before it; otherwise None (continue from the last checkpoint)."""
    stalled = not snapshot.next and any(task.error is not None for task in snapshot.tasks)
    return snapshot.parent_config if stalled and snapshot.parent_config else None
