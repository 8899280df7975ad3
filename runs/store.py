"""The run store: every run, subtask, candidate, verdict, event and model call, in SQL.

Runs live in the same database as the memory bank (``SEASONED_DB_URL`` or ``$SEASONED_HOME/memory.db``),
in tables prefixed ``run_`` (``tables``). The graph writes as it goes; ``seasoned runs list`` / ``runs show``
read (``traces``).

    store = RunStore.open()                       # or RunStore(db) to share the memory bank's Database
    unsubscribe = store.attach(gateway.ledger)    # model calls tagged with a run_id are recorded
    store.start_run(run_id, task=task, model=model, strategy="adaptive")
    ...
    store.record_result(result, namespace=..., outcome_recorded=...)   # or finish_run(run_id, status=...)
    trace = store.get_run(run_id)

Model calls arrive through a ledger listener, often on the event loop: they are only buffered there, and
written in one transaction by ``flush()``, by any other write of this store, and by ``finish_run``. A run's
progress events may be buffered the same way (``record_event(..., defer=True)``, what the Agent does). What
is buffered is written with the next write of the store (a run's ``record_result`` at the latest), and no later
than ``FLUSH_DELAY_S`` after it arrived when it arrived on a running event loop (a timer on that loop): a run
of a few milliseconds is written in two transactions (its start and its end), a long one every second or so.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, Self

from seasoned.errors import CandidateNotFound, RunNotFound, RunStoreError
from seasoned.memory.db import Database, retry_locked
from seasoned.models.ledger import CallRecord, Ledger
from seasoned.models.spend import Spend, total_spend
from seasoned.settings import default_db_url
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ._rows import (
    call_trace,
    call_values,
    clip,
    event_values,
    jsonable,
    summary_of,
    trace_of,
    utc,
    utcnow,
    verdict_values,
)
from .owners import RunOwnerRow, WorkerRow, owner_gone, process_owner
from .tables import (
    RUN_ID_MAX,
    CallRow,
    CandidateRow,
    EventRow,
    FeedbackRow,
    RunBase,
    RunRow,
    SubtaskRow,
    VerdictRow,
    add_missing_columns,
)
from .traces import CallTrace, RunSummary, RunTrace, SpendKey, group_spend

log = logging.getLogger(__name__)

# A run's start and end are written with Core statements built once (values bound at execution): building a
# statement, or an ORM unit of work, costs more CPU than SQLite takes to run it.
RUNS, OWNERS, EVENTS = RunRow.__table__, RunOwnerRow.__table__, EventRow.__table__
CANDIDATES, VERDICTS, CALLS = CandidateRow.__table__, VerdictRow.__table__, CallRow.__table__
RESUMES_OF = select(RUNS.c.resumes).where(RUNS.c.id == bindparam("b_run"))
RESUME = update(RUNS).where(RUNS.c.id == bindparam("b_run")).values(
    resumes=bindparam("resumes"), status="running", started_at=bindparam("started_at"), finished_at=None, error=None)
CLOSE = update(RUNS).where(RUNS.c.id == bindparam("b_run")).values(
    {name: bindparam(name) for name in ("status", "answer", "verified", "confidence", "spend", "error", "finished_at")})
OWN = update(OWNERS).where(OWNERS.c.run_id == bindparam("b_run")).values(owner=bindparam("owner"))
CANDIDATES_AT = select(CANDIDATES.c.sample_index, CANDIDATES.c.id).where(
    CANDIDATES.c.run_id == bindparam("b_run"), CANDIDATES.c.subtask == bindparam("b_subtask"),
    CANDIDATES.c.sample_index.in_(bindparam("b_indexes", expanding=True)))
UPDATE_CANDIDATE = update(CANDIDATES).where(CANDIDATES.c.id == bindparam("b_id")).values(
    {name: bindparam(name) for name in ("text", "answer", "status", "score", "tokens", "call_ids", "created_at")})
CALLS_STORED = select(CALLS.c.id).where(CALLS.c.id.in_(bindparam("b_ids", expanding=True)))

AUTO_FLUSH_CALLS = 1000  # a buffer this long is written from the listener itself (bounded memory)
FLUSH_DELAY_S = 1.0  # what is buffered on an event loop is written within this long
STARTED_KEPT = 10_000  # run ids this store started, known to exist (deferred events need no look-up)
LEASE = timedelta(seconds=60)  # a heartbeat older than this: its process is taken to be gone
ABANDONED = ("the process running it stopped (killed or crashed); resume it with `seasoned run --resume {id}` "
             "or POST /v1/runs/{id}/resume")


class FinishedRun(Protocol):
    """What ``RunStore.record_result`` reads from a finished run (``seasoned.graphs.RunResult``)."""

    run_id: str
    answer: str | None
    verified: bool
    confidence: float
    verified_by: str | None
    memory_ids: list[str]
    subtasks: list[dict]  # each with its plan fields, ``allocation`` and ``result`` (None when skipped)
    candidates: list  # Candidate dicts: id, text, answer, status, tokens
    verdicts: list  # Verdict dicts: candidate_id, verifier, passed, score, details
    spend: Spend


class RunStore:
    """Writes and reads run traces in the memory database (thread-safe; one per process is enough)."""

    def __init__(self, db: Database, *, owns_db: bool = False):
        self.db = db
        self._owns_db = owns_db
        self._buffer: list[CallRecord] = []
        self._events: list[dict] = []  # deferred events (EventRow values)
        self._timer: asyncio.TimerHandle | None = None  # the flush due on ``_timer_loop``
        self._timer_loop: Any = None
        self._started: dict[str, None] = {}  # insertion-ordered, at most STARTED_KEPT run ids
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flusher at a time keeps the buffer order
        self.owner = process_owner()  # recorded with every run this store starts or resumes

        def create() -> None:
            with db.write_engine.begin() as conn:
                RunBase.metadata.create_all(conn)
                added = add_missing_columns(conn)
            if added:
                log.info("run store: columns added to an older database: %s", ", ".join(added))

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
    ) -> bool:
        """Open the record of a run; True when it is new. An existing id is a resume: its record (and
        candidates, events...) is kept, its status becomes ``running`` again and a ``resumed`` event is recorded."""
        if not run_id or len(run_id) > RUN_ID_MAX:
            raise ValueError(f"run_id {run_id!r}: expected 1 to {RUN_ID_MAX} characters")

        def write(session: Session) -> bool:
            now = utcnow()
            sql = session.connection()
            resumes = sql.scalar(RESUMES_OF, {"b_run": run_id})
            if resumes is None:  # a new run (its owner row is made with it)
                sql.execute(insert(RUNS), [{
                    "id": run_id, "namespace": namespace, "task": task, "task_id": task_id, "env": env,
                    "parent_id": parent_id, "model": model, "strategy": strategy, "budget": jsonable(budget),
                    "options": jsonable(options), "status": "running", "verified": False, "resumes": 0,
                    "created_at": now, "started_at": now}])
                sql.execute(insert(OWNERS), [{"run_id": run_id, "owner": self.owner}])
                return True
            self._set_owner(session, run_id)
            sql.execute(RESUME, {"b_run": run_id, "resumes": resumes + 1, "started_at": now})
            sql.execute(insert(EVENTS), [event_values(run_id, "resumed", {
                "resumes": resumes + 1, "model": model, "strategy": strategy, "budget": budget})])
            return False

        try:
            created = self._write(write)
        except IntegrityError:  # another process created it between our read and insert: now a resume
            created = self._write(write)
        with self._buffer_lock:
            self._started[run_id] = None
            while len(self._started) > STARTED_KEPT:
                self._started.pop(next(iter(self._started)))
        return created

    def _set_owner(self, session: Session, run_id: str) -> None:
        """This process runs ``run_id`` now."""
        sql = session.connection()
        if not sql.execute(OWN, {"b_run": run_id, "owner": self.owner}).rowcount:
            sql.execute(insert(OWNERS), [{"run_id": run_id, "owner": self.owner}])

    def finish_run(
        self, run_id: str, *, status: str, answer: str | None, verified: bool, confidence: float | None,
        spend: dict, error: str | None = None,
    ) -> None:
        """Close the record of a run (buffered calls are written in the same transaction)."""
        if not status:
            raise ValueError("status: must not be empty")

        def write(session: Session) -> None:
            self._close(session, run_id, status=status, answer=answer, verified=verified, confidence=confidence,
                        spend=spend, error=error)

        self._write(write)

    @staticmethod
    def _close(session: Session, run_id: str, *, status: str, answer: str | None, verified: bool,
               confidence: float | None, spend: dict, error: str | None = None) -> None:
        """Write a run's end (raises ``RunNotFound`` for an unknown run)."""
        closed = session.connection().execute(CLOSE, {
            "b_run": run_id, "status": status, "answer": answer, "verified": bool(verified),
            "confidence": None if confidence is None else float(confidence), "spend": jsonable(spend),
            "error": error, "finished_at": utcnow()})
        if not closed.rowcount:
            raise RunNotFound(run_id)

    def record_result(self, result: FinishedRun, *, namespace: str, outcome_recorded: bool) -> None:
        """Record a finished run from its result (a ``RunResult``), in one transaction: the outcome event, its
        subtasks, its candidates with their verdicts, and the run closed as ``completed``. ``outcome_recorded``
        says whether the memory items were credited already (an environment checked the answer)."""
        run_id = result.run_id
        verdicts_by_candidate: dict[str, list[dict]] = {}
        for verdict in result.verdicts:
            verdicts_by_candidate.setdefault(verdict["candidate_id"], []).append(verdict)

        def write(session: Session) -> None:
            self._close(session, run_id, status="completed", answer=result.answer, verified=result.verified,
                        confidence=result.confidence, spend=result.spend.model_dump())
            session.connection().execute(insert(EVENTS), [event_values(run_id, "outcome", {
                "verified": result.verified, "verified_by": result.verified_by, "memory_ids": result.memory_ids,
                "namespace": namespace, "outcome_recorded": outcome_recorded})])
            for subtask in result.subtasks:
                sub = subtask["result"] or {}
                self._put_subtask(session, run_id, subtask["id"], description=subtask["description"],
                                  kind=subtask["kind"], difficulty=subtask["difficulty"],
                                  depends_on=subtask["depends_on"], allocation=subtask["allocation"] or {})
                self._end_subtask(session, run_id, subtask["id"], status="completed" if sub else "skipped",
                                  answer=sub.get("answer"), verified=bool(sub.get("verified")),
                                  spend={k: sub.get(k) for k in ("tokens", "usd", "calls", "allocated")})
            candidates = []
            for index, candidate in enumerate(result.candidates):
                verdicts = verdicts_by_candidate.get(candidate["id"], [])
                candidates.append({
                    "index": index, "text": candidate["text"], "answer": candidate["answer"], "verdicts": verdicts,
                    "score": max((v["score"] for v in verdicts if v["score"] is not None), default=None),
                    "status": candidate["status"], "tokens": candidate.get("tokens", 0), "call_ids": []})
            self._put_candidates(session, run_id, "main", candidates)

        self._write(write)

    # --- runs whose process stopped ------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Say this process is alive (a server replica calls it every few seconds; see ``owners``)."""

        def write(session: Session) -> None:
            session.merge(WorkerRow(owner=self.owner, heartbeat_at=utcnow()))

        self._write(write)

    def _abandoned(self, session: Session, rows: list[RunRow]) -> list[RunRow]:
        owners = {o.run_id: o.owner for o in session.scalars(
            select(RunOwnerRow).where(RunOwnerRow.run_id.in_([r.id for r in rows])))}
        beats = {w.owner: utc(w.heartbeat_at) for w in session.scalars(
            select(WorkerRow).where(WorkerRow.owner.in_(set(owners.values()))))}
        now = utcnow()
        return [r for r in rows if owner_gone(owners.get(r.id), beats.get(owners.get(r.id)), now, LEASE)]

    def _interrupt(self, session: Session, row: RunRow) -> None:
        calls = [call_trace(c) for c in session.scalars(select(CallRow).where(CallRow.run_id == row.id))]
        row.status, row.error, row.finished_at = "interrupted", ABANDONED.format(id=row.id), utcnow()
        row.spend = jsonable({**(row.spend or {}), **total_spend(calls).model_dump()})

    def recover_abandoned(self) -> list[str]:
        """Mark ``interrupted`` every run left ``running`` by a process that has stopped (a server killed
        with runs in flight); returns their ids. Such runs resume from their last checkpoint."""
        found = self._interrupt_running(self._abandoned)
        if found:
            log.warning("run store: %d run(s) left running by a stopped process marked interrupted: %s",
                        len(found), ", ".join(found[:10]) + (" ..." if len(found) > 10 else ""))
        return found

    def interrupt_own(self) -> list[str]:
        """Mark ``interrupted`` the runs this process still has ``running`` (a server shutting down)."""

        def own(session: Session, rows: list[RunRow]) -> list[RunRow]:
            mine = set(session.scalars(select(RunOwnerRow.run_id).where(
                RunOwnerRow.run_id.in_([r.id for r in rows]), RunOwnerRow.owner == self.owner)))
            return [r for r in rows if r.id in mine]

        return self._interrupt_running(own)

    def _interrupt_running(self, pick: Callable[[Session, list[RunRow]], list[RunRow]]) -> list[str]:
        def write(session: Session) -> list[str]:
            running = list(session.scalars(select(RunRow).where(RunRow.status == "running")))
            picked = pick(session, running) if running else []
            for row in picked:
                self._interrupt(session, row)
            return [row.id for row in picked]

        return self._write(write)

    def claim(self, run_id: str) -> str:
        """Take a run over to resume it here: ``claimed`` (it was interrupted, failed, cancelled, or left
        running by a stopped process; it is now ``running`` and ours), ``completed``, or ``running`` (a live
        process has it). One transaction, so two replicas never both claim the same run."""

        def write(session: Session) -> str:
            row = self._run(session, run_id)
            if row.status == "completed":
                return "completed"
            if row.status == "running" and not self._abandoned(session, [row]):
                return "running"
            row.status = "running"
            session.merge(RunOwnerRow(run_id=run_id, owner=self.owner))
            return "claimed"

        return self._write(write)

    def record_feedback(self, run_id: str, success: bool, comment: str | None = None) -> None:
        """An outcome learned after the run (a user's verdict, a hidden test): kept with the run."""

        def write(session: Session) -> None:
            self._run(session, run_id)
            session.add(FeedbackRow(run_id=run_id, success=bool(success), comment=comment, created_at=utcnow()))

        self._write(write)

    # --- writing: subtasks, candidates, verdicts, events ---------------------------------------------
    def add_subtask(
        self, run_id: str, subtask_id: str, *, description: str, kind: str, difficulty: float | None,
        depends_on: list[str], allocation: dict,
    ) -> None:
        """Record a planned subtask and its budget allocation (again for the same id: updated in place)."""

        def write(session: Session) -> None:
            self._run(session, run_id)
            self._put_subtask(session, run_id, subtask_id, description=description, kind=kind,
                              difficulty=difficulty, depends_on=depends_on, allocation=allocation)

        self._write(write)

    def _put_subtask(self, session: Session, run_id: str, subtask_id: str, *, description: str, kind: str,
                     difficulty: float | None, depends_on: list[str], allocation: dict) -> None:
        row = self._subtask(session, run_id, subtask_id, create=True)
        row.description, row.kind = description, clip(kind, 64)
        row.difficulty = None if difficulty is None else float(difficulty)
        row.depends_on, row.allocation = jsonable(list(depends_on)), jsonable(allocation)

    def finish_subtask(
        self, run_id: str, subtask_id: str, *, status: str, answer: str | None, verified: bool, spend: dict,
    ) -> None:
        """Record a subtask's outcome (a subtask never added is created here)."""

        def write(session: Session) -> None:
            self._run(session, run_id)
            self._end_subtask(session, run_id, subtask_id, status=status, answer=answer, verified=verified,
                              spend=spend)

        self._write(write)

    def _end_subtask(self, session: Session, run_id: str, subtask_id: str, *, status: str, answer: str | None,
                     verified: bool, spend: dict) -> None:
        row = self._subtask(session, run_id, subtask_id, create=True)
        row.status, row.answer, row.verified = status, answer, bool(verified)
        row.spend, row.finished_at = jsonable(spend), utcnow()

    def add_candidate(
        self, run_id: str, *, subtask: str, index: int, text: str, answer: str | None, verdicts: list[dict],
        score: float | None, status: str, tokens: int, call_ids: list[str],
    ) -> str:
        """Record a candidate and its verdicts; returns its id. ``index`` numbers the candidates of one
        subtask (unique across waves): the same (run, subtask, index) again replaces that candidate and its
        verdicts, keeping its id (a node replayed after a resume does not duplicate its samples)."""

        def write(session: Session) -> str:
            self._run(session, run_id)
            return self._put_candidates(session, run_id, subtask, [{
                "index": index, "text": text, "answer": answer, "verdicts": verdicts, "score": score,
                "status": status, "tokens": tokens, "call_ids": call_ids}])[0]

        return self._write(write)

    @staticmethod
    def _put_candidates(session: Session, run_id: str, subtask: str, candidates: list[dict]) -> list[str]:
        """Write candidates (dicts of ``add_candidate``'s arguments) with their verdicts: one already recorded
        with the same index keeps its id and has its fields and verdicts replaced. Returns their ids."""
        subtask = clip(subtask, 256)
        if not candidates:
            return []
        sql = session.connection()
        existing = dict(sql.execute(CANDIDATES_AT, {"b_run": run_id, "b_subtask": subtask,
                                                    "b_indexes": [int(c["index"]) for c in candidates]}).all())
        if existing:
            sql.execute(delete(VERDICTS).where(VERDICTS.c.candidate_id.in_(list(existing.values()))))
        now = utcnow()
        ids, fresh, verdicts = [], [], []
        for candidate in candidates:
            values = {"text": candidate["text"], "answer": candidate["answer"], "status": candidate["status"],
                      "score": None if candidate["score"] is None else float(candidate["score"]),
                      "tokens": int(candidate["tokens"]), "call_ids": [str(c) for c in candidate["call_ids"]],
                      "created_at": now}
            candidate_id = existing.get(int(candidate["index"]))
            if candidate_id is None:
                candidate_id = uuid.uuid4().hex
                fresh.append({"id": candidate_id, "run_id": run_id, "subtask": subtask,
                              "sample_index": int(candidate["index"]), **values})
            else:
                sql.execute(UPDATE_CANDIDATE, {"b_id": candidate_id, **values})
            verdicts += [verdict_values(candidate_id, run_id, verdict) for verdict in candidate["verdicts"]]
            ids.append(candidate_id)
        if fresh:
            sql.execute(insert(CANDIDATES), fresh)
        if verdicts:
            sql.execute(insert(VERDICTS), verdicts)
        return ids

    def add_verdict(self, candidate_id: str, verdict: dict) -> None:
        """A verdict known after the candidate was recorded (``verifier``, ``passed``, ``score``, ``details``)."""

        def write(session: Session) -> None:
            candidate = session.get(CandidateRow, candidate_id)
            if candidate is None:
                raise CandidateNotFound(candidate_id)
            session.connection().execute(insert(VERDICTS), [verdict_values(candidate_id, candidate.run_id, verdict)])

        self._write(write)

    def record_event(self, run_id: str, kind: str, data: dict, *, defer: bool = False) -> None:
        """A step of the run: node start/end, an allocation decision, a stop decision and its reason...
        ``defer=True``: buffered like calls (see the module's docstring); an event of a run that does not exist
        is then dropped (logged) instead of raising ``RunNotFound``."""
        if not kind:
            raise ValueError("event kind: must not be empty")
        values = event_values(run_id, clip(kind, 64), data)
        if defer:
            with self._buffer_lock:
                self._events.append(values)
            self._buffered()
            return

        def write(session: Session) -> None:
            self._run(session, run_id)
            session.connection().execute(insert(EVENTS), [values])

        self._write(write)

    # --- writing: calls ----------------------------------------------------------------------------
    def record_call(self, record: CallRecord) -> None:
        """Ledger listener: buffer a call tagged with a run id (cheap; safe on the event loop)."""
        if record.run_id is None or len(record.run_id) > RUN_ID_MAX:
            return  # not part of a run (a longer id cannot name one)
        with self._buffer_lock:
            self._buffer.append(record)
        self._buffered()

    def _buffered(self) -> None:
        """Something was buffered: written now when the buffers are full, else within ``FLUSH_DELAY_S``."""
        with self._buffer_lock:
            full = len(self._buffer) + len(self._events) >= AUTO_FLUSH_CALLS
            if not full:
                self._arm_timer()
        if full:
            self._flush_quietly()

    def _arm_timer(self) -> None:
        """A flush on the running event loop in ``FLUSH_DELAY_S``, unless one is due (under the buffer lock)."""
        if self._timer is not None and not self._timer_loop.is_closed():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: written with the next write or flush
        self._timer_loop, self._timer = loop, loop.call_later(FLUSH_DELAY_S, self._flush_on_time)

    def _flush_on_time(self) -> None:
        with self._buffer_lock:
            self._timer = None
        self._flush_quietly()

    def _flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as err:  # noqa: BLE001 - a listener must never break a model call; buffer kept
            log.warning("run store: could not write %d buffered calls and %d events yet: %s",
                        len(self._buffer), len(self._events), err)

    def attach(self, ledger: Ledger) -> Callable[[], None]:
        """Record the calls of ``ledger`` that carry a run id; returns a function that detaches."""
        return ledger.subscribe(self.record_call)

    def flush(self) -> int:
        """Write the buffered calls and events in one transaction; returns how many calls were written."""
        return self._write(lambda session: None, flush_only=True)

    @property
    def pending_calls(self) -> int:
        with self._buffer_lock:
            return len(self._buffer)

    def _write_calls(self, session: Session, records: list[CallRecord]) -> int:
        """Insert the calls not already stored (a call flushed twice is written once)."""
        if not records:
            return 0
        sql = session.connection()
        unique = list({r.id: r for r in records}.values())
        ids = [r.id for r in unique]
        existing: set[str] = set()
        for start in range(0, len(ids), 500):
            existing.update(sql.scalars(CALLS_STORED, {"b_ids": ids[start:start + 500]}))
        fresh = [call_values(r) for r in unique if r.id not in existing]
        if fresh:
            sql.execute(insert(CALLS), fresh)
        return len(fresh)

    def _write_events(self, session: Session, events: list[dict]) -> None:
        """Insert deferred events, leaving out (logged) those of runs that do not exist."""
        if not events:
            return
        with self._buffer_lock:
            unknown = {e["run_id"] for e in events} - self._started.keys()
        if unknown:
            found = set(session.connection().scalars(select(RUNS.c.id).where(RUNS.c.id.in_(unknown))))
            missing = unknown - found
            if missing:
                log.warning("run store: %d event(s) of unknown run(s) dropped: %s", len(events),
                            ", ".join(sorted(missing)[:5]))
                events = [e for e in events if e["run_id"] not in missing]
        if events:
            session.connection().execute(insert(EVENTS), events)

    def _write(self, fn: Callable[[Session], Any], *, flush_only: bool = False) -> Any:
        """Run ``fn`` in one write transaction, together with the buffered calls and events (put back on
        failure)."""
        with self._flush_lock:
            with self._buffer_lock:
                records, self._buffer = self._buffer, []
                events, self._events = self._events, []
            if flush_only and not records and not events:
                return 0

            def transaction() -> Any:
                with self.db.write() as session:
                    written = self._write_calls(session, records)
                    self._write_events(session, events)
                    result = fn(session)
                return written if flush_only else result

            try:
                return retry_locked(transaction)
            except BaseException:
                with self._buffer_lock:
                    self._buffer[:0] = records
                    self._events[:0] = events
                raise

    @staticmethod
    def _run(session: Session, run_id: str) -> RunRow:
        row = session.get(RunRow, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return row

    @staticmethod
    def _subtask(session: Session, run_id: str, subtask_id: str, *, create: bool) -> SubtaskRow:
        subtask_id = clip(subtask_id, 256)
        row = session.scalars(select(SubtaskRow).where(
            SubtaskRow.run_id == run_id, SubtaskRow.subtask_id == subtask_id)).one_or_none()
        if row is None and create:
            position = session.scalar(select(func.count()).select_from(SubtaskRow)
                                      .where(SubtaskRow.run_id == run_id)) or 0
            row = SubtaskRow(run_id=run_id, subtask_id=subtask_id, position=position, depends_on=[],
                             allocation={}, status="pending", created_at=utcnow())
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
        return [summary_of(RunSummary, row, usage.get(row.id), feedback.get(row.id)) for row in rows]

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
            calls = [call_trace(c) for c in session.scalars(
                select(CallRow).where(CallRow.run_id == run_id).order_by(CallRow.started_at, CallRow.id))]
            events = list(session.scalars(select(EventRow).where(EventRow.run_id == run_id).order_by(EventRow.id)))
            feedback = list(session.scalars(select(FeedbackRow).where(FeedbackRow.run_id == run_id)
                                            .order_by(FeedbackRow.id)))

        return trace_of(row, subtasks, candidates, verdicts, calls, events, feedback)

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
            return [call_trace(c) for c in session.scalars(select(CallRow).where(CallRow.run_id == run_id))]

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


__all__ = ["AUTO_FLUSH_CALLS", "FinishedRun", "RunStore"]
