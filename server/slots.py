"""The per-key limit on requests in flight: in this process, or in the database so replicas share it.

``InFlight`` counts in memory (one server process). ``SharedInFlight`` keeps one row per request in flight
in the run database (``server_slots``): a request takes a slot in one write transaction that counts the
key's live slots first (under a per-key advisory lock on PostgreSQL), so N replicas behind one address
enforce one limit. Slots of a replica that
stopped without releasing them (kill -9) stop counting as soon as its process is known to be gone (see
``seasoned.runs.owners``) and are deleted by the next sweep.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import datetime

from seasoned.errors import ApiError
from seasoned.memory.db import Database, retry_locked
from seasoned.runs.owners import WorkerRow, owner_gone, process_owner
from seasoned.runs.store import LEASE
from sqlalchemy import DateTime, String, delete, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def _refused(limit: int) -> ApiError:
    return ApiError(429, f"too many requests in flight for this API key (limit {limit}); retry when one has "
                    "finished", code="concurrency_limit")


class Slot:
    """One request's place; ``release`` is idempotent."""

    def __init__(self, release):
        self._release = release
        self._released = False

    async def release(self) -> None:
        if not self._released:
            self._released = True
            await asyncio.shield(self._release())  # given back even when the request is being cancelled


class InFlight:
    """At most ``limit`` requests in flight per key in this process; one more is refused (429), never queued."""

    def __init__(self, limit: int):
        self.limit = limit
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    async def acquire(self, label: str) -> Slot:
        with self._lock:
            count = self._counts.get(label, 0)
            if count >= self.limit:
                raise _refused(self.limit)
            self._counts[label] = count + 1

        async def release() -> None:
            with self._lock:
                self._counts[label] -= 1
                if not self._counts[label]:
                    del self._counts[label]

        return Slot(release)

    async def in_flight(self, label: str) -> int:
        with self._lock:
            return self._counts.get(label, 0)


class _Base(DeclarativeBase):
    pass


class SlotRow(_Base):
    __tablename__ = "server_slots"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SharedInFlight:
    """``InFlight`` across replicas, in the database (see the module docstring)."""

    def __init__(self, db: Database, limit: int):
        self.db = db
        self.limit = limit
        self.owner = process_owner()

        def create() -> None:
            with db.write_engine.begin() as conn:
                _Base.metadata.create_all(conn)

        retry_locked(create, also=(DBAPIError,), attempts=5)

    def _live_count(self, session: Session, label: str) -> int:
        counts = dict(session.execute(select(SlotRow.owner, func.count()).where(SlotRow.label == label)
                                      .group_by(SlotRow.owner)).all())
        if not counts:
            return 0
        beats = {w.owner: w.heartbeat_at for w in session.scalars(
            select(WorkerRow).where(WorkerRow.owner.in_(list(counts))))}
        now = datetime.now().astimezone()
        return sum(n for owner, n in counts.items()
                   if not owner_gone(owner, _aware(beats.get(owner)), now, LEASE))

    def _take(self, label: str) -> str | None:
        slot_id = uuid.uuid4().hex

        def write() -> str | None:
            with self.db.write() as session:
                if not self.db.is_sqlite:  # one count-then-insert per key at a time (SQLite: BEGIN IMMEDIATE)
                    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:label))"), {"label": label})
                if self._live_count(session, label) >= self.limit:
                    return None
                session.add(SlotRow(id=slot_id, label=label, owner=self.owner,
                                    created_at=datetime.now().astimezone()))
                return slot_id

        return retry_locked(write)

    def _give_back(self, slot_id: str) -> None:
        def write() -> None:
            with self.db.write() as session:
                session.execute(delete(SlotRow).where(SlotRow.id == slot_id))

        retry_locked(write)

    async def acquire(self, label: str) -> Slot:
        slot_id = await asyncio.to_thread(self._take, label)
        if slot_id is None:
            raise _refused(self.limit)
        return Slot(lambda: asyncio.to_thread(self._give_back, slot_id))

    async def in_flight(self, label: str) -> int:
        def read() -> int:
            with self.db.read() as session:
                return self._live_count(session, label)

        return await asyncio.to_thread(read)

    def sweep(self) -> int:
        """Delete the slots of replicas that have stopped; returns how many."""

        def write() -> int:
            with self.db.write() as session:
                owners = set(session.scalars(select(SlotRow.owner).distinct()))
                beats = {w.owner: w.heartbeat_at for w in session.scalars(
                    select(WorkerRow).where(WorkerRow.owner.in_(list(owners))))} if owners else {}
                now = datetime.now().astimezone()
                gone = [o for o in owners if owner_gone(o, _aware(beats.get(o)), now, LEASE)]
                if not gone:
                    return 0
                return session.execute(delete(SlotRow).where(SlotRow.owner.in_(gone))).rowcount or 0

        return retry_locked(write)


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)
