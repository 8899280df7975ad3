"""Attempts: how many samples each checked question drew, and whether one was verified.

The give-up rule of single questions (``graphs.stopping.give_up_rule``) learns from these records, per
namespace, model and kind (the environment's name, else ``general``). They are kept with the runs (the run
database, table ``run_attempts``), not in the memory bank: an agent without memory learns when to give up
too, and two agents that differ only in their memory give up by the same rule. Without a database
(``Agent(record=False)``) they are kept in this object for its lifetime.

    log = AttemptLog.open()                       # or AttemptLog(store.db), or AttemptLog() in memory
    log.record("default", "local/smollm2-135m", "addition", samples=3, successes=1, tokens=240)
    log.records("default", "local/smollm2-135m", "addition")   # newest first, as dicts
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from seasoned.memory.db import Database, retry_locked
from seasoned.settings import default_db_url
from sqlalchemy import DateTime, Index, Integer, String, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MAX_RECORDS = 2000  # the newest records of a (namespace, model, kind) that the rule reads
_KEY = 256  # longest namespace / kind kept (clipped, as the run store does)
_PATTERN = 256  # longest sample pattern kept ("+" verified, else the index of the rejected answer: "0,1,0,+")


class _Base(DeclarativeBase):
    pass


class AttemptRow(_Base):
    __tablename__ = "run_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(_KEY))
    model: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(_KEY))
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    samples: Mapped[int] = mapped_column(Integer)  # samples drawn (answered, checked)
    successes: Mapped[int] = mapped_column(Integer)  # of them verified (0 when the run stopped unverified)
    pattern: Mapped[str | None] = mapped_column(String(_PATTERN), nullable=True)  # the samples in order
    tokens: Mapped[int] = mapped_column(Integer)  # the tokens the samples cost
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_run_attempts_key", "namespace", "model", "kind", "id"),)


def _as_dict(namespace: str, model: str, kind: str, samples: int, successes: int, pattern: str | None,
             tokens: int, run_id: str | None) -> dict:
    """A record in the form the give-up rule and the allocation records share."""
    return {"namespace": namespace, "model": model, "subtask_kind": kind, "samples": samples,
            "successes": successes, "success": successes > 0, "pattern": pattern,
            "spent": {"tokens": tokens}, "run_id": run_id}


class AttemptLog:
    """Attempt records in SQL when a database is given, else in memory (thread-safe)."""

    def __init__(self, db: Database | None = None):
        self.db = db
        self._memory: list[dict] = []
        self._lock = threading.Lock()
        if db is not None:
            # several processes may create it at once (replicas on one PostgreSQL): a lost race is retried
            retry_locked(lambda: _Base.metadata.create_all(db.write_engine), also=(DBAPIError,), attempts=5)

    @classmethod
    def open(cls, url: str | None = None) -> AttemptLog:
        return cls(Database(url or default_db_url()))

    def record(self, namespace: str, model: str, kind: str, *, samples: int, successes: int, tokens: int,
               pattern: str | None = None, run_id: str | None = None) -> None:
        """One checked question: ``samples`` drawn, ``successes`` of them verified, ``tokens`` spent on them,
        ``pattern`` the samples in order (``graphs.success_model.sample_pattern``)."""
        if samples < 1 or not 0 <= successes <= samples:
            raise ValueError(f"an attempt needs samples >= 1 and 0 <= successes <= samples, got {samples}, "
                             f"{successes}")
        namespace, kind = namespace[:_KEY], kind[:_KEY]
        pattern = None if pattern is None else str(pattern)[:_PATTERN]
        if self.db is None:
            with self._lock:
                self._memory.append(_as_dict(namespace, model, kind, samples, successes, pattern, tokens, run_id))
            return

        def write() -> None:
            with self.db.write() as session:
                session.add(AttemptRow(namespace=namespace, model=model, kind=kind, run_id=run_id,
                                       samples=int(samples), successes=int(successes), tokens=int(tokens),
                                       pattern=pattern, created_at=datetime.now(UTC)))

        retry_locked(write)

    def records(self, namespace: str, model: str, kind: str, *, limit: int = MAX_RECORDS) -> list[dict]:
        """The newest ``limit`` records of this namespace, model and kind (newest first)."""
        namespace, kind = namespace[:_KEY], kind[:_KEY]
        if self.db is None:
            with self._lock:
                mine = [r for r in self._memory
                        if (r["namespace"], r["model"], r["subtask_kind"]) == (namespace, model, kind)]
            return mine[::-1][:limit]
        with self.db.read() as session:
            rows = session.scalars(select(AttemptRow).where(
                AttemptRow.namespace == namespace, AttemptRow.model == model, AttemptRow.kind == kind,
            ).order_by(AttemptRow.id.desc()).limit(limit))
            return [_as_dict(r.namespace, r.model, r.kind, r.samples, r.successes, r.pattern, r.tokens, r.run_id)
                    for r in rows]
