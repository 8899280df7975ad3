"""The run store's SQL tables (prefixed ``run_``): runs, subtasks, candidates, verdicts, calls, events, feedback.

They live in the memory bank's database; ``RunStore`` creates them, and adds to a database made by an older
version the (nullable) columns added since (``add_missing_columns``). Columns of names that may come from
model output (subtask ids, kinds) have fixed lengths: the store clips values to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seasoned.errors import RunStoreError
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_ID_MAX = 64  # run ids are keys up to this length (the memory bank's ``run_ids`` use the same ids)


class RunBase(DeclarativeBase):
    pass


class RunRow(RunBase):
    __tablename__ = "run_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(256))
    task: Mapped[str] = mapped_column(Text)
    task_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    env: Mapped[str | None] = mapped_column(String(128), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    model: Mapped[str] = mapped_column(String(512))
    strategy: Mapped[str] = mapped_column(String(64))
    budget: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    spend: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # first start
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # latest start (resume)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_run_runs_created", "created_at"),
        Index("ix_run_runs_ns_created", "namespace", "created_at"),
        Index("ix_run_runs_status_created", "status", "created_at"),
    )


class SubtaskRow(RunBase):
    __tablename__ = "run_subtasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("run_runs.id", ondelete="CASCADE"))
    subtask_id: Mapped[str] = mapped_column(String(256))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(64), default="")
    difficulty: Mapped[float | None] = mapped_column(Float, nullable=True)
    depends_on: Mapped[list] = mapped_column(JSON, default=list)
    allocation: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    spend: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (UniqueConstraint("run_id", "subtask_id", name="uq_run_subtasks_run_subtask"),)


class CandidateRow(RunBase):
    __tablename__ = "run_candidates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("run_runs.id", ondelete="CASCADE"))
    subtask: Mapped[str] = mapped_column(String(256))
    sample_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    call_ids: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("run_id", "subtask", "sample_index", name="uq_run_candidates_run_subtask_index"),
    )


class VerdictRow(RunBase):
    __tablename__ = "run_verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[str] = mapped_column(String(64), ForeignKey("run_candidates.id", ondelete="CASCADE"),
                                              index=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    verifier: Mapped[str] = mapped_column(String(128))
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    details: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CallRow(RunBase):
    """One model call (a ledger record). No foreign key: calls may be flushed before their run is started."""

    __tablename__ = "run_calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), index=True)
    subtask: Mapped[str | None] = mapped_column(String(256), nullable=True)
    role: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str] = mapped_column(String(512))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    cost_known: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    adapter: Mapped[str | None] = mapped_column(Text, nullable=True)  # the LoRA adapter GGUF a local call used


class EventRow(RunBase):
    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("run_runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FeedbackRow(RunBase):
    __tablename__ = "run_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("run_runs.id", ondelete="CASCADE"), index=True)
    success: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def add_missing_columns(conn: Connection) -> list[str]:
    """Add to the run tables of an existing database the columns defined here that it lacks (a database made
    by an older version); returns them as ``table.column``. Only nullable columns are ever added, so rows
    written before read back with None there."""
    inspector = inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    added = []
    for table in RunBase.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise RunStoreError(f"{table.name}.{column.name}: a column added later must be nullable")
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"))
            added.append(f"{table.name}.{column.name}")
    return added


__all__ = ["RUN_ID_MAX", "CallRow", "CandidateRow", "EventRow", "FeedbackRow", "RunBase", "RunRow", "SubtaskRow",
           "VerdictRow", "add_missing_columns"]
