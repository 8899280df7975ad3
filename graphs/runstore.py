"""The run store: every run, subtask, candidate, verdict, event and model call, in SQL.

Runs live in the same database as the memory bank (``SEASONED_DB_URL`` or ``$SEASONED_HOME/memory.db``),
in tables prefixed ``run_``. The graph writes as it goes; ``seasoned runs list`` / ``runs show`` read.

    store = RunStore.open()                       # or RunStore(db) to share the memory bank's Database
    unsubscribe = store.attach(gateway.ledger)    # model calls tagged with a run_id are recorded
    store.start_run(run_id, task=task, model=model, strategy="adaptive")
    ...
    store.finish_run(run_id, status="succeeded", answer="42", verified=True, confidence=0.9, spend={...})
    trace = store.get_run(run_id)

Model calls arrive through a ledger listener, often on the event loop: they are only buffered there, and
written in one transaction by ``flush()``, by any other write of this store, and by ``finish_run``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python
from seasoned.memory.db import Database, default_db_url, retry_locked
from seasoned.models.errors import SeasonedError
from seasoned.models.ledger import CallRecord, Ledger
from seasoned.models.spend import Spend, total_spend
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

log = logging.getLogger(__name__)

RUN_ID_MAX = 64  # run ids are keys up to this length (the memory bank's ``run_ids`` use the same ids)
UNTAGGED = "(untagged)"  # the group of calls that carry no role / subtask tag
AUTO_FLUSH_CALLS = 1000  # a buffer this long is written from the listener itself (bounded memory)
SpendKey = Literal["role", "subtask", "model"]


# --- errors ----------------------------------------------------------------------------------------
class RunStoreError(SeasonedError):
    """Base class of run store errors (one line for people)."""


class RunNotFound(RunStoreError, KeyError):
    """No run with this id."""

    def __init__(self, run_id: str):
        super().__init__(f"run {run_id!r} not found (see `seasoned runs list`)")
        self.run_id = run_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CandidateNotFound(RunStoreError, KeyError):
    """No candidate with this id."""

    def __init__(self, candidate_id: str):
        super().__init__(f"candidate {candidate_id!r} not found")
        self.candidate_id = candidate_id

    def __str__(self) -> str:
        return str(self.args[0])


# --- tables ----------------------------------------------------------------------------------------
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


# --- what readers get (pydantic: the HTTP service serialises these with model_dump(mode="json")) -----
class RunSummary(BaseModel):
    """One line of ``runs list``. Tokens, USD and calls are summed from the recorded calls (from ``spend``
    when no call was recorded); seconds are ``spend["seconds"]`` when given, else wall-clock time."""

    id: str
    namespace: str
    task: str
    task_id: str | None = None
    env: str | None = None
    parent_id: str | None = None
    model: str
    strategy: str
    status: str
    answer: str | None = None
    verified: bool = False
    confidence: float | None = None
    error: str | None = None
    resumes: int = 0
    created_at: datetime
    started_at: datetime
    finished_at: datetime | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    seconds: float = 0.0
    feedback: bool | None = None  # the latest feedback's success, if any


class RunDetail(RunSummary):
    budget: dict | None = None
    options: dict | None = None
    spend: dict | None = None


class SubtaskTrace(BaseModel):
    id: str
    position: int
    description: str = ""
    kind: str = ""
    difficulty: float | None = None
    depends_on: list[str] = Field(default_factory=list)
    allocation: dict = Field(default_factory=dict)
    status: str = "pending"
    answer: str | None = None
    verified: bool | None = None
    spend: dict | None = None
    created_at: datetime
    finished_at: datetime | None = None


class VerdictTrace(BaseModel):
    verifier: str
    passed: bool | None = None
    score: float | None = None
    details: Any = None
    created_at: datetime


class CandidateTrace(BaseModel):
    id: str
    subtask: str
    index: int
    text: str
    answer: str | None = None
    score: float | None = None
    status: str
    tokens: int = 0
    call_ids: list[str] = Field(default_factory=list)
    verdicts: list[VerdictTrace] = Field(default_factory=list)
    created_at: datetime


class CallTrace(BaseModel):
    id: str
    subtask: str | None = None
    role: str | None = None
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    cost_known: bool = True
    latency_s: float = 0.0
    error: str | None = None
    attempt: int = 1
    started_at: datetime


class EventTrace(BaseModel):
    kind: str
    data: dict = Field(default_factory=dict)
    created_at: datetime


class FeedbackTrace(BaseModel):
    success: bool
    comment: str | None = None
    created_at: datetime


class RunTrace(BaseModel):
    """Everything recorded about one run; totals are computed from its calls."""

    run: RunDetail
    subtasks: list[SubtaskTrace] = Field(default_factory=list)
    candidates: list[CandidateTrace] = Field(default_factory=list)  # ordered by subtask, then index
    calls: list[CallTrace] = Field(default_factory=list)  # ordered by start time
    events: list[EventTrace] = Field(default_factory=list)  # in the order recorded
    feedback: list[FeedbackTrace] = Field(default_factory=list)
    totals: Spend = Field(default_factory=Spend)
    by_role: dict[str, Spend] = Field(default_factory=dict)
    by_subtask: dict[str, Spend] = Field(default_factory=dict)
    by_model: dict[str, Spend] = Field(default_factory=dict)

    def candidates_for(self, subtask: str) -> list[CandidateTrace]:
        return [c for c in self.candidates if c.subtask == _clip(subtask, 256)]


# --- helpers ---------------------------------------------------------------------------------------
def _clip(value: str | None, length: int) -> str | None:
    """Names that may come from model output (subtask ids, kinds) are cut to their column's length."""
    return value if value is None or len(value) <= length else value[:length]


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: everything stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    """Plain JSON values (pydantic models, dataclasses, datetimes, sets...; anything else as ``str``)."""
    return to_jsonable_python(value, fallback=str)


def _as_dict(value: Any) -> dict:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a dict, got {type(value).__name__}")
    return dict(value)


def _verdict_row(candidate_id: str, run_id: str, verdict: Any) -> VerdictRow:
    """A verdict dict (``verifier`` or ``name``, ``passed``, ``score``, ``details``); other keys go to details."""
    data = _as_dict(verdict)
    name = data.pop("verifier", None) or data.pop("name", None)
    if not name:
        raise ValueError(f"verdict {verdict!r}: needs a 'verifier' name")
    passed = data.pop("passed", None)
    score = data.pop("score", None)
    details = data.pop("details", None)
    if data:  # keep what we were given rather than drop it
        details = {**data, **(details if isinstance(details, Mapping) else {} if details is None else
                              {"details": details})}
    return VerdictRow(
        candidate_id=candidate_id, run_id=run_id, verifier=_clip(str(name), 128),
        passed=None if passed is None else bool(passed), score=None if score is None else float(score),
        details=_jsonable(details), created_at=_now(),
    )


def _call_row(record: CallRecord) -> CallRow:
    return CallRow(
        id=record.id, run_id=record.run_id, subtask=_clip(record.subtask, 256), role=_clip(record.role, 64),
        model=_clip(record.model, 512),
        prompt_tokens=int(record.prompt_tokens), completion_tokens=int(record.completion_tokens),
        cost_usd=float(record.cost_usd), cost_known=bool(record.cost_known), latency_s=float(record.latency_s),
        error=record.error, attempt=int(record.attempt),
        started_at=datetime.fromtimestamp(record.started_at, UTC),
    )


def _call_trace(row: CallRow) -> CallTrace:
    return CallTrace(
        id=row.id, subtask=row.subtask, role=row.role, model=row.model, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, total_tokens=row.prompt_tokens + row.completion_tokens,
        cost_usd=row.cost_usd, cost_known=row.cost_known, latency_s=row.latency_s, error=row.error,
        attempt=row.attempt, started_at=_utc(row.started_at),
    )


def group_spend(calls: Iterable[CallTrace], key: SpendKey) -> dict[str, Spend]:
    """Totals of ``calls`` per role, subtask or model (calls without that tag under ``UNTAGGED``)."""
    if key not in ("role", "subtask", "model"):
        raise ValueError(f"spend key {key!r}: expected 'role', 'subtask' or 'model'")
    groups: dict[str, Spend] = defaultdict(Spend)
    for call in calls:
        groups[getattr(call, key) or UNTAGGED].add(call)
    return dict(groups)


def _spend_number(spend: dict | None, *keys: str) -> float | None:
    for key in keys:
        value = (spend or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


# --- the store -------------------------------------------------------------------------------------
class RunStore:
    """Writes and reads run traces in the memory database (thread-safe; one per process is enough)."""

    def __init__(self, db: Database, *, owns_db: bool = False):
        self.db = db
        self._owns_db = owns_db
        self._buffer: list[CallRecord] = []
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flusher at a time keeps the buffer order

        def create() -> None:
            with db.write_engine.begin() as conn:
                RunBase.metadata.create_all(conn)

        retry_locked(create, also=(DBAPIError,), attempts=5)

    @classmethod
    def open(cls, url: str | None = None) -> RunStore:
        """The store in the database at ``url`` (default: the memory database, ``SEASONED_DB_URL``)."""
        return cls(Database(url or default_db_url()), owns_db=True)

    def close(self) -> None:
        """Write buffered calls; dispose of the engines if this store opened them."""
        self.flush()
        if self._owns_db:
            self.db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing: runs -----------------------------------------------------------------------------
    def start_run(
        self, run_id: str, *, task: str, model: str, strategy: str, namespace: str = "default",
        budget: dict | None = None, env: str | None = None, task_id: str | None = None,
        parent_id: str | None = None, options: dict | None = None,
    ) -> None:
        """Open the record of a run. An existing id is a resume: its record (and candidates, events...) is
        kept, its status becomes ``running`` again and a ``resumed`` event is recorded."""
        if not run_id or len(run_id) > RUN_ID_MAX:
            raise ValueError(f"run_id {run_id!r}: expected 1 to {RUN_ID_MAX} characters")

        def write(session: Session) -> None:
            now = _now()
            row = session.get(RunRow, run_id)
            if row is None:
                session.add(RunRow(
                    id=run_id, namespace=namespace, task=task, task_id=task_id, env=env, parent_id=parent_id,
                    model=model, strategy=strategy, budget=_jsonable(budget), options=_jsonable(options),
                    status="running", verified=False, resumes=0, created_at=now, started_at=now,
                ))
                return
            row.resumes += 1
            row.status, row.started_at, row.finished_at, row.error = "running", now, None, None
            session.add(EventRow(run_id=run_id, kind="resumed", created_at=now, data=_jsonable(
                {"resumes": row.resumes, "model": model, "strategy": strategy, "budget": budget})))

        try:
            self._write(write)
        except IntegrityError:  # another process created it between our read and insert: now a resume
            self._write(write)

    def finish_run(
        self, run_id: str, *, status: str, answer: str | None, verified: bool, confidence: float | None,
        spend: dict, error: str | None = None,
    ) -> None:
        """Close the record of a run (buffered calls are written in the same transaction)."""
        if not status:
            raise ValueError("status: must not be empty")

        def write(session: Session) -> None:
            row = self._run(session, run_id)
            row.status, row.answer, row.verified = status, answer, bool(verified)
            row.confidence = None if confidence is None else float(confidence)
            row.spend, row.error, row.finished_at = _jsonable(spend), error, _now()

        self._write(write)

    def record_result(self, result: Any, *, namespace: str, outcome_recorded: bool) -> None:
        """Record a finished run from its result (a ``RunResult``): the outcome event, its subtasks, its
        candidates with their verdicts, then close the run as ``completed``. ``outcome_recorded`` says whether
        the memory items were credited already (an environment checked the answer)."""
        self.record_event(result.run_id, "outcome", {
            "verified": result.verified, "verified_by": result.verified_by, "memory_ids": result.memory_ids,
            "namespace": namespace, "outcome_recorded": outcome_recorded})
        for subtask in result.subtasks:
            sub = subtask["result"] or {}
            self.add_subtask(result.run_id, subtask["id"], description=subtask["description"],
                             kind=subtask["kind"], difficulty=subtask["difficulty"],
                             depends_on=subtask["depends_on"], allocation=subtask["allocation"] or {})
            self.finish_subtask(result.run_id, subtask["id"], status="completed" if sub else "skipped",
                                answer=sub.get("answer"), verified=bool(sub.get("verified")),
                                spend={k: sub.get(k) for k in ("tokens", "usd", "calls", "allocated")})
        verdicts_by_candidate: dict[str, list[dict]] = {}
        for verdict in result.verdicts:
            verdicts_by_candidate.setdefault(verdict["candidate_id"], []).append(verdict)
        for index, candidate in enumerate(result.candidates):
            verdicts = verdicts_by_candidate.get(candidate["id"], [])
            self.add_candidate(
                result.run_id, subtask="main", index=index,
                text=candidate["text"], answer=candidate["answer"], verdicts=verdicts,
                score=max((v["score"] for v in verdicts), default=None), status=candidate["status"],
                tokens=candidate.get("tokens", 0), call_ids=[],
            )
        self.finish_run(result.run_id, status="completed", answer=result.answer, verified=result.verified,
                        confidence=result.confidence, spend=result.spend.model_dump())

    def record_feedback(self, run_id: str, success: bool, comment: str | None = None) -> None:
        """An outcome learned after the run (a user's verdict, a hidden test): kept with the run."""

        def write(session: Session) -> None:
            self._run(session, run_id)
            session.add(FeedbackRow(run_id=run_id, success=bool(success), comment=comment, created_at=_now()))

        self._write(write)

    # --- writing: subtasks, candidates, verdicts, events ---------------------------------------------
    def add_subtask(
        self, run_id: str, subtask_id: str, *, description: str, kind: str, difficulty: float | None,
        depends_on: list[str], allocation: dict,
    ) -> None:
        """Record a planned subtask and its budget allocation (again for the same id: updated in place)."""

        def write(session: Session) -> None:
            self._run(session, run_id)
            row = self._subtask(session, run_id, subtask_id, create=True)
            row.description, row.kind = description, _clip(kind, 64)
            row.difficulty = None if difficulty is None else float(difficulty)
            row.depends_on, row.allocation = _jsonable(list(depends_on)), _jsonable(allocation)

        self._write(write)

    def finish_subtask(
        self, run_id: str, subtask_id: str, *, status: str, answer: str | None, verified: bool, spend: dict,
    ) -> None:
        """Record a subtask's outcome (a subtask never added is created here)."""

        def write(session: Session) -> None:
            self._run(session, run_id)
            row = self._subtask(session, run_id, subtask_id, create=True)
            row.status, row.answer, row.verified = status, answer, bool(verified)
            row.spend, row.finished_at = _jsonable(spend), _now()

        self._write(write)

    def add_candidate(
        self, run_id: str, *, subtask: str, index: int, text: str, answer: str | None, verdicts: list[dict],
        score: float | None, status: str, tokens: int, call_ids: list[str],
    ) -> str:
        """Record a candidate and its verdicts; returns its id. ``index`` numbers the candidates of one
        subtask (unique across waves): the same (run, subtask, index) again replaces that candidate and its
        verdicts, keeping its id (a node replayed after a resume does not duplicate its samples)."""

        subtask = _clip(subtask, 256)

        def write(session: Session) -> str:
            self._run(session, run_id)
            row = session.scalars(select(CandidateRow).where(
                CandidateRow.run_id == run_id, CandidateRow.subtask == subtask, CandidateRow.sample_index == index,
            )).one_or_none()
            if row is None:
                row = CandidateRow(id=uuid.uuid4().hex, run_id=run_id, subtask=subtask, sample_index=int(index))
                session.add(row)
            else:
                for old in session.scalars(select(VerdictRow).where(VerdictRow.candidate_id == row.id)):
                    session.delete(old)
            row.text, row.answer, row.status = text, answer, status
            row.score = None if score is None else float(score)
            row.tokens, row.call_ids, row.created_at = int(tokens), [str(c) for c in call_ids], _now()
            session.flush()
            for verdict in verdicts:
                session.add(_verdict_row(row.id, run_id, verdict))
            return row.id

        return self._write(write)

    def add_verdict(self, candidate_id: str, verdict: dict) -> None:
        """A verdict known after the candidate was recorded (``verifier``, ``passed``, ``score``, ``details``)."""

        def write(session: Session) -> None:
            candidate = session.get(CandidateRow, candidate_id)
            if candidate is None:
                raise CandidateNotFound(candidate_id)
            session.add(_verdict_row(candidate_id, candidate.run_id, verdict))

        self._write(write)

    def record_event(self, run_id: str, kind: str, data: dict) -> None:
        """A step of the run: node start/end, an allocation decision, a stop decision and its reason..."""
        if not kind:
            raise ValueError("event kind: must not be empty")

        def write(session: Session) -> None:
            self._run(session, run_id)
            payload = _jsonable(data) if data is not None else {}
            if not isinstance(payload, dict):
                payload = {"value": payload}
            session.add(EventRow(run_id=run_id, kind=_clip(kind, 64), data=payload, created_at=_now()))

        self._write(write)

    # --- writing: calls ----------------------------------------------------------------------------
    def record_call(self, record: CallRecord) -> None:
        """Ledger listener: buffer a call tagged with a run id (cheap; safe on the event loop)."""
        if record.run_id is None or len(record.run_id) > RUN_ID_MAX:
            return  # not part of a run (a longer id cannot name one)
        with self._buffer_lock:
            self._buffer.append(record)
            full = len(self._buffer) >= AUTO_FLUSH_CALLS
        if full:
            try:
                self.flush()
            except Exception as err:  # noqa: BLE001 - a listener must never break a model call; buffer kept
                log.warning("run store: could not write %d buffered calls yet: %s", len(self._buffer), err)

    def attach(self, ledger: Ledger) -> Callable[[], None]:
        """Record the calls of ``ledger`` that carry a run id; returns a function that detaches."""
        return ledger.subscribe(self.record_call)

    def flush(self) -> int:
        """Write the buffered calls in one transaction; returns how many were written."""
        return self._write(lambda session: None, flush_only=True)

    @property
    def pending_calls(self) -> int:
        with self._buffer_lock:
            return len(self._buffer)

    def _write_calls(self, session: Session, records: list[CallRecord]) -> int:
        """Insert the calls not already stored (a call flushed twice is written once)."""
        if not records:
            return 0
        unique = list({r.id: r for r in records}.values())
        ids = [r.id for r in unique]
        existing: set[str] = set()
        for start in range(0, len(ids), 500):
            existing.update(session.scalars(select(CallRow.id).where(CallRow.id.in_(ids[start:start + 500]))))
        fresh = [_call_row(r) for r in unique if r.id not in existing]
        session.add_all(fresh)
        return len(fresh)

    def _write(self, fn: Callable[[Session], Any], *, flush_only: bool = False) -> Any:
        """Run ``fn`` in one write transaction, together with the buffered calls (put back on failure)."""
        with self._flush_lock:
            with self._buffer_lock:
                records, self._buffer = self._buffer, []
            if flush_only and not records:
                return 0

            def transaction() -> Any:
                with self.db.write() as session:
                    written = self._write_calls(session, records)
                    result = fn(session)
                return written if flush_only else result

            try:
                return retry_locked(transaction)
            except BaseException:
                with self._buffer_lock:
                    self._buffer[:0] = records
                raise

    @staticmethod
    def _run(session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return row

    @staticmethod
    def _subtask(session: Session, run_id: str, subtask_id: str, *, create: bool) -> SubtaskRow:
        subtask_id = _clip(subtask_id, 256)
        row = session.scalars(select(SubtaskRow).where(
            SubtaskRow.run_id == run_id, SubtaskRow.subtask_id == subtask_id)).one_or_none()
        if row is None and create:
            position = session.scalar(select(func.count()).select_from(SubtaskRow)
                                      .where(SubtaskRow.run_id == run_id)) or 0
            row = SubtaskRow(run_id=run_id, subtask_id=subtask_id, position=position, depends_on=[],
                             allocation={}, status="pending", created_at=_now())
            session.add(row)
        return row

    # --- reading -----------------------------------------------------------------------------------
    def list_runs(self, limit: int = 20, namespace: str | None = None, status: str | None = None) -> list[RunSummary]:
        """The latest runs first (by first start), optionally of one namespace and/or status."""
        if limit < 1:
            raise ValueError(f"limit: expected a positive number, got {limit}")
        query = select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(limit)
        if namespace is not None:
            query = query.where(RunRow.namespace == namespace)
        if status is not None:
            query = query.where(RunRow.status == status)
        with self.db.read() as session:
            rows = list(session.scalars(query))
            ids = [row.id for row in rows]
            usage = self._usage(session, ids)
            feedback = self._latest_feedback(session, ids)
        return [self._summary(RunSummary, row, usage.get(row.id), feedback.get(row.id)) for row in rows]

    def resolve(self, run_id: str) -> str:
        """The full id of a run given its id or any unique prefix of it (what progress lines show).
        Raises ``RunNotFound``, or ``RunStoreError`` naming the candidates when the prefix is ambiguous."""
        run_id = (run_id or "").strip()
        if not run_id or len(run_id) > RUN_ID_MAX:
            raise RunNotFound(run_id)
        with self.db.read() as session:
            if session.get(RunRow, run_id) is not None:
                return run_id
            escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            found = list(session.scalars(select(RunRow.id).where(RunRow.id.like(f"{escaped}%", escape="\\"))
                                         .order_by(RunRow.id).limit(6)))
        if not found:
            raise RunNotFound(run_id)
        if len(found) > 1:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise RunStoreError(f"run id prefix {run_id!r} is ambiguous: it matches {shown}; give more characters")
        return found[0]

    def get_run(self, run_id: str) -> RunTrace:
        """Everything recorded about a run (buffered calls are written first), by its id or a unique
        prefix of it. Raises ``RunNotFound``."""
        self.flush()
        run_id = self.resolve(run_id)
        with self.db.read() as session:
            row = self._run(session, run_id)
            subtasks = list(session.scalars(select(SubtaskRow).where(SubtaskRow.run_id == run_id)
                                            .order_by(SubtaskRow.position, SubtaskRow.id)))
            candidates = list(session.scalars(select(CandidateRow).where(CandidateRow.run_id == run_id)))
            verdicts = list(session.scalars(select(VerdictRow).where(VerdictRow.run_id == run_id)
                                            .order_by(VerdictRow.id)))
            calls = [_call_trace(c) for c in session.scalars(
                select(CallRow).where(CallRow.run_id == run_id).order_by(CallRow.started_at, CallRow.id))]
            events = list(session.scalars(select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id)))
            feedback = list(session.scalars(select(FeedbackRow).where(FeedbackRow.run_id == run_id)
                                            .order_by(FeedbackRow.id)))

        totals = total_spend(calls)
        usage = (totals.total_tokens, totals.cost_usd, totals.calls) if calls else None
        latest = feedback[-1].success if feedback else None
        detail = self._summary(RunDetail, row, usage, latest, budget=row.budget, options=row.options,
                               spend=row.spend)

        by_verdicts: dict[str, list[VerdictTrace]] = defaultdict(list)
        for v in verdicts:
            by_verdicts[v.candidate_id].append(VerdictTrace(
                verifier=v.verifier, passed=v.passed, score=v.score, details=v.details, created_at=_utc(v.created_at)))
        order = {s.subtask_id: s.position for s in subtasks}
        candidates.sort(key=lambda c: (order.get(c.subtask, len(order)), c.subtask, c.sample_index))

        return RunTrace(
            run=detail,
            subtasks=[SubtaskTrace(
                id=s.subtask_id, position=s.position, description=s.description, kind=s.kind,
                difficulty=s.difficulty, depends_on=s.depends_on or [], allocation=s.allocation or {},
                status=s.status, answer=s.answer, verified=s.verified, spend=s.spend,
                created_at=_utc(s.created_at), finished_at=_utc(s.finished_at)) for s in subtasks],
            candidates=[CandidateTrace(
                id=c.id, subtask=c.subtask, index=c.sample_index, text=c.text, answer=c.answer, score=c.score,
                status=c.status, tokens=c.tokens, call_ids=c.call_ids or [], verdicts=by_verdicts.get(c.id, []),
                created_at=_utc(c.created_at)) for c in candidates],
            calls=calls,
            events=[EventTrace(kind=e.kind, data=e.data or {}, created_at=_utc(e.created_at)) for e in events],
            feedback=[FeedbackTrace(success=f.success, comment=f.comment, created_at=_utc(f.created_at))
                      for f in feedback],
            totals=totals,
            by_role=group_spend(calls, "role"),
            by_subtask=group_spend(calls, "subtask"),
            by_model=group_spend(calls, "model"),
        )

    def spend(self, run_id: str) -> Spend:
        """What the run's recorded calls spent (buffered calls are written first). Raises ``RunNotFound``."""
        return total_spend(self._calls(run_id))

    def spend_by(self, run_id: str, key: SpendKey = "role") -> dict[str, Spend]:
        """The run's recorded calls totalled per role, subtask or model. Raises ``RunNotFound``."""
        if key not in ("role", "subtask", "model"):
            raise ValueError(f"spend key {key!r}: expected 'role', 'subtask' or 'model'")
        return group_spend(self._calls(run_id), key)

    def _calls(self, run_id: str) -> list[CallTrace]:
        self.flush()
        with self.db.read() as session:
            self._run(session, run_id)
            return [_call_trace(c) for c in session.scalars(select(CallRow).where(CallRow.run_id == run_id))]

    @staticmethod
    def _usage(session: Session, run_ids: list[str]) -> dict[str, tuple[int, float, int]]:
        if not run_ids:
            return {}
        query = (select(CallRow.run_id, func.sum(CallRow.prompt_tokens + CallRow.completion_tokens),
                        func.sum(CallRow.cost_usd), func.count())
                 .where(CallRow.run_id.in_(run_ids)).group_by(CallRow.run_id))
        return {run_id: (int(tokens or 0), float(usd or 0.0), int(n)) for run_id, tokens, usd, n in session.execute(query)}

    @staticmethod
    def _latest_feedback(session: Session, run_ids: list[str]) -> dict[str, bool]:
        if not run_ids:
            return {}
        latest: dict[str, bool] = {}
        rows = session.execute(select(FeedbackRow.run_id, FeedbackRow.success)
                               .where(FeedbackRow.run_id.in_(run_ids)).order_by(FeedbackRow.id))
        for run_id, success in rows:
            latest[run_id] = success
        return latest

    @staticmethod
    def _summary(kind: type[RunSummary], row: RunRow, usage: tuple[int, float, int] | None,
                 feedback: bool | None, **extra: Any) -> Any:
        spend = row.spend
        if usage is None:  # nothing recorded through a ledger: what the run reported, if anything
            usage = (int(_spend_number(spend, "tokens", "total_tokens") or 0),
                     _spend_number(spend, "cost_usd", "usd") or 0.0, int(_spend_number(spend, "calls") or 0))
        started, finished = _utc(row.started_at), _utc(row.finished_at)
        seconds = _spend_number(spend, "seconds")
        if seconds is None:
            seconds = ((finished or _now()) - started).total_seconds()
        return kind(
            id=row.id, namespace=row.namespace, task=row.task, task_id=row.task_id, env=row.env,
            parent_id=row.parent_id, model=row.model, strategy=row.strategy, status=row.status, answer=row.answer,
            verified=row.verified, confidence=row.confidence, error=row.error, resumes=row.resumes,
            created_at=_utc(row.created_at), started_at=started, finished_at=finished, tokens=usage[0],
            cost_usd=usage[1], calls=usage[2], seconds=max(seconds, 0.0), feedback=feedback, **extra,
        )


__all__ = [
    "UNTAGGED",
    "CallTrace",
    "CandidateNotFound",
    "CandidateTrace",
    "EventTrace",
    "FeedbackTrace",
    "RunDetail",
    "RunNotFound",
    "RunStore",
    "RunStoreError",
    "RunSummary",
    "RunTrace",
    "SubtaskTrace",
    "VerdictTrace",
    "group_spend",
]
