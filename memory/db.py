"""SQL schema and engines: the source of truth (SQLite by default, any SQLAlchemy URL, e.g. PostgreSQL).

SQLite runs in WAL mode with a busy timeout (set on every connection through a ``connect`` event),
and write transactions start with ``BEGIN IMMEDIATE``: a deferred transaction that reads then writes
can fail with "database is locked" without waiting when another process committed in between.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from seasoned.errors import MemoryConfigError
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 60_000
T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class ItemRow(Base):
    __tablename__ = "memory_items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    task_signature: Mapped[str] = mapped_column(String(512), default="")
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    run_ids: Mapped[list] = mapped_column(JSON, default=list)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    superseded_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    times_retrieved: Mapped[int] = mapped_column(Integer, default=0)
    times_succeeded: Mapped[int] = mapped_column(Integer, default=0)
    times_failed: Mapped[int] = mapped_column(Integer, default=0)
    utility: Mapped[float] = mapped_column(Float, default=0.5)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The vector index reflects this row as of ``version`` (present when active, absent otherwise).
    indexed: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_memory_items_ns_status_kind", "namespace", "status", "kind"),
        Index("ix_memory_items_ns_indexed", "namespace", "indexed"),
        Index("ix_memory_items_ns_signature", "namespace", "kind", "task_signature"),
        UniqueConstraint("namespace", "key", name="uq_memory_items_ns_key"),
    )


class VersionRow(Base):
    __tablename__ = "memory_item_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    snapshot: Mapped[dict] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("item_id", "version", name="uq_memory_item_versions_item_version"),)


class NamespaceRow(Base):
    """One row per namespace; ``generation`` grows with every change of its active items (cache stamp)."""

    __tablename__ = "memory_namespaces"

    namespace: Mapped[str] = mapped_column(String(256), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


class Database:
    """Engines and sessions for one URL; ``write()`` gives a transaction that holds the write lock."""

    def __init__(self, url: str, setting: str = "SEASONED_DB_URL", *, read_only: bool = False):
        """``read_only`` opens an existing database without writing anything (no schema creation, SQLite
        opened ``mode=ro``, or ``immutable`` when even its WAL files cannot be created): for reading a
        bank on a read-only file system. Any write then fails."""
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise MemoryConfigError(f"{setting}: cannot parse database URL {url!r}") from None
        self.url = url
        self.read_only = read_only
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        try:
            if self.is_sqlite and read_only:
                self.sqlite_path = self._sqlite_file(parsed, setting)
                self.read_engine = self.write_engine = self._sqlite_read_only_engine(self.sqlite_path, setting)
            elif self.is_sqlite:
                self.sqlite_path = self._sqlite_file(parsed, setting)
                self.read_engine = self._sqlite_engine(url, immediate=False)
                self.write_engine = self._sqlite_engine(url, immediate=True)
            else:
                self.sqlite_path = None
                self.read_engine = create_engine(url, pool_pre_ping=True)
                self.write_engine = self.read_engine
        except (ArgumentError, ImportError, ModuleNotFoundError) as err:
            raise MemoryConfigError(f"{setting}: cannot use database URL {redact(url)!r}: {err}") from None
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        if not read_only:
            self._create_schema(setting)

    @staticmethod
    def _sqlite_read_only_engine(path: Path | None, setting: str) -> Engine:
        """``mode=ro`` reads a WAL database when its ``-shm`` file exists or can be created; on a read-only
        directory that is not always so, and ``immutable=1`` (no locking, no WAL) is the way to read it."""
        if path is None or not path.is_file():
            raise MemoryConfigError(f"{setting}: no database at {str(path)!r} to open read-only")
        last: Exception | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            engine = create_engine(f"sqlite:///file:{quote(str(path))}?{flags}&uri=true",
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
                return engine
            except DBAPIError as err:
                last = err
                engine.dispose()
        raise MemoryConfigError(f"{setting}: cannot open {str(path)!r} read-only: "
                                f"{str(getattr(last, 'orig', last)).strip().splitlines()[0]}")

    @staticmethod
    def _sqlite_file(parsed, setting: str) -> Path | None:
        if not parsed.database or parsed.database == ":memory:":
            return None
        path = Path(parsed.database).expanduser()
        if not path.parent.is_dir():
            raise MemoryConfigError(f"{setting}: directory {str(path.parent)!r} of the SQLite file does not exist")
        return path

    @staticmethod
    def _sqlite_engine(url: str, immediate: bool) -> Engine:
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _create_schema(self, setting: str) -> None:
        def create() -> None:
            with self.write_engine.begin() as conn:
                Base.metadata.create_all(conn)

        try:
            retry_locked(create, also=(DBAPIError,), attempts=5)
        except DBAPIError as err:
            raise MemoryConfigError(
                f"{setting}: cannot open database {redact(self.url)!r}: {str(err.orig).strip().splitlines()[0]}"
            ) from None

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on exit (rolled back on error)."""
        with self._write() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()


@contextmanager
def exclusive_open(path: Path) -> Iterator[None]:
    """Hold an inter-process lock (``.NAME.lock`` beside ``path``) while opening what may not exist yet.

    Two processes opening a fresh SEASONED_HOME at once would otherwise both create the same files, and
    one would take the other's half-made ones for damage. A folder that cannot be written gets no lock
    (nothing is created there either)."""
    try:
        fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


RETRYABLE_SQLSTATES = ("40001", "40P01")  # PostgreSQL: serialization failure, deadlock


def retry_locked(fn: Callable[[], T], *, attempts: int = 8, also: tuple = ()) -> T:
    """Run ``fn`` again when SQLite still reports a lock after its busy timeout (belt and braces), or when
    PostgreSQL aborted a serializable transaction that raced another."""
    for attempt in range(attempts):
        try:
            return fn()
        except (OperationalError, *also) as err:
            message = str(getattr(err, "orig", err)).lower()
            raced = getattr(getattr(err, "orig", None), "sqlstate", None) in RETRYABLE_SQLSTATES
            retryable = raced or "locked" in message or "busy" in message or (also and isinstance(err, also))
            if not retryable or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (2 ** attempt))
    raise AssertionError("unreachable")


def add_to_counters(session: Session, table: Any, key: dict[str, Any], deltas: dict[str, float],
                    defaults: dict[str, Any] | None = None) -> None:
    """Add ``deltas`` to the counter columns of the row of ``table`` at ``key``, creating it (counters at 0,
    other columns from ``defaults``) when missing, in one ``UPDATE ... SET n = n + d`` that the database
    applies atomically: writers in other processes or replicas never lose each other's counts (a read, add
    and write back under READ COMMITTED would). A row another writer inserts first is then updated."""
    from sqlalchemy import and_, insert, update
    from sqlalchemy.exc import IntegrityError

    table = getattr(table, "__table__", table)
    where = and_(*(table.c[name] == value for name, value in key.items()))
    change = {name: table.c[name] + delta for name, delta in deltas.items()}
    extra = dict(defaults or {})
    if session.execute(update(table).where(where).values(**change, **extra)).rowcount:
        return
    try:
        with session.begin_nested():
            session.execute(insert(table).values(**key, **deltas, **extra))
    except IntegrityError:  # inserted meanwhile by another writer: add to it
        session.execute(update(table).where(where).values(**change, **extra))
