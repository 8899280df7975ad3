"""Between SQL rows and what the store returns: clipping, JSON-safe values, UTC times, and the conversions
of verdicts, ledger records and stored rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_jsonable_python
from seasoned.models.ledger import CallRecord
from seasoned.models.spend import total_spend

from .tables import CallRow, CandidateRow, EventRow, FeedbackRow, RunRow, SubtaskRow, VerdictRow
from .traces import (
    CallTrace,
    CandidateTrace,
    EventTrace,
    FeedbackTrace,
    RunDetail,
    RunSummary,
    RunTrace,
    SubtaskTrace,
    VerdictTrace,
    group_spend,
)


def clip(value: str | None, length: int) -> str | None:
    """Names that may come from model output (subtask ids, kinds) are cut to their column's length."""
    return value if value is None or len(value) <= length else value[:length]


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: everything stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def jsonable(value: Any) -> Any:
    """Plain JSON values (pydantic models, dataclasses, datetimes, sets...; anything else as ``str``)."""
    return to_jsonable_python(value, fallback=str)


def as_dict(value: Any) -> dict:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a dict, got {type(value).__name__}")
    return dict(value)


def verdict_values(candidate_id: str, run_id: str, verdict: Any) -> dict:
    """A verdict's column values, from a verdict dict (``verifier`` or ``name``, ``passed``, ``score``,
    ``details``); other keys go to details."""
    data = as_dict(verdict)
    name = data.pop("verifier", None) or data.pop("name", None)
    if not name:
        raise ValueError(f"verdict {verdict!r}: needs a 'verifier' name")
    passed = data.pop("passed", None)
    score = data.pop("score", None)
    details = data.pop("details", None)
    if data:  # keep what we were given rather than drop it
        details = {**data, **(details if isinstance(details, Mapping) else {} if details is None else
                              {"details": details})}
    return {"candidate_id": candidate_id, "run_id": run_id, "verifier": clip(str(name), 128),
            "passed": None if passed is None else bool(passed), "score": None if score is None else float(score),
            "details": jsonable(details), "created_at": utcnow()}


def event_values(run_id: str, kind: str, data: Any) -> dict:
    """An event's column values (for a bulk insert): ``data`` made JSON-safe, a non-dict kept as ``value``."""
    payload = jsonable(data) if data is not None else {}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    return {"run_id": run_id, "kind": kind, "data": payload, "created_at": utcnow()}


def call_values(record: CallRecord) -> dict:
    """A ledger record's column values."""
    return {"id": record.id, "run_id": record.run_id, "subtask": clip(record.subtask, 256),
            "role": clip(record.role, 64), "model": clip(record.model, 512),
            "prompt_tokens": int(record.prompt_tokens), "completion_tokens": int(record.completion_tokens),
            "cost_usd": float(record.cost_usd), "cost_known": bool(record.cost_known),
            "latency_s": float(record.latency_s), "error": record.error, "attempt": int(record.attempt),
            "started_at": datetime.fromtimestamp(record.started_at, UTC), "adapter": record.adapter}


def call_trace(row: CallRow) -> CallTrace:
    return CallTrace(
        id=row.id, subtask=row.subtask, role=row.role, model=row.model, prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens, total_tokens=row.prompt_tokens + row.completion_tokens,
        cost_usd=row.cost_usd, cost_known=row.cost_known, latency_s=row.latency_s, error=row.error,
        attempt=row.attempt, started_at=utc(row.started_at), adapter=row.adapter,
    )


def spend_number(spend: dict | None, *keys: str) -> float | None:
    for key in keys:
        value = (spend or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def summary_of(kind: type[RunSummary], row: RunRow, usage: tuple[int, float, int] | None,
               feedback: bool | None, **extra: Any) -> Any:
    """A run's line (``RunSummary``) or head (``RunDetail``); ``usage`` is (tokens, USD, calls) of its recorded
    calls, None when no call was recorded (then what the run reported in ``spend``)."""
    spend = row.spend
    if usage is None:  # nothing recorded through a ledger: what the run reported, if anything
        usage = (int(spend_number(spend, "tokens", "total_tokens") or 0),
                 spend_number(spend, "cost_usd", "usd") or 0.0, int(spend_number(spend, "calls") or 0))
    started, finished = utc(row.started_at), utc(row.finished_at)
    seconds = spend_number(spend, "seconds")
    if seconds is None:
        seconds = ((finished or utcnow()) - started).total_seconds()
    return kind(
        id=row.id, namespace=row.namespace, task=row.task, task_id=row.task_id, env=row.env,
        parent_id=row.parent_id, model=row.model, strategy=row.strategy, status=row.status, answer=row.answer,
        verified=row.verified, confidence=row.confidence, error=row.error, resumes=row.resumes,
        created_at=utc(row.created_at), started_at=started, finished_at=finished, tokens=usage[0],
        cost_usd=usage[1], calls=usage[2], seconds=max(seconds, 0.0), feedback=feedback, **extra,
    )


def trace_of(row: RunRow, subtasks: list[SubtaskRow], candidates: list[CandidateRow], verdicts: list[VerdictRow],
             calls: list[CallTrace], events: list[EventRow], feedback: list[FeedbackRow]) -> RunTrace:
    """Everything recorded about one run, from its rows (candidates ordered by subtask, then index)."""
    totals = total_spend(calls)
    usage = (totals.total_tokens, totals.cost_usd, totals.calls) if calls else None
    latest = feedback[-1].success if feedback else None
    detail = summary_of(RunDetail, row, usage, latest, budget=row.budget, options=row.options, spend=row.spend)

    by_verdicts: dict[str, list[VerdictTrace]] = defaultdict(list)
    for v in verdicts:
        by_verdicts[v.candidate_id].append(VerdictTrace(
            verifier=v.verifier, passed=v.passed, score=v.score, details=v.details, created_at=utc(v.created_at)))
    order = {s.subtask_id: s.position for s in subtasks}
    candidates.sort(key=lambda c: (order.get(c.subtask, len(order)), c.subtask, c.sample_index))

    return RunTrace(
        run=detail,
        subtasks=[SubtaskTrace(
            id=s.subtask_id, position=s.position, description=s.description, kind=s.kind,
            difficulty=s.difficulty, depends_on=s.depends_on or [], allocation=s.allocation or {},
            status=s.status, answer=s.answer, verified=s.verified, spend=s.spend,
            created_at=utc(s.created_at), finished_at=utc(s.finished_at)) for s in subtasks],
        candidates=[CandidateTrace(
            id=c.id, subtask=c.subtask, index=c.sample_index, text=c.text, answer=c.answer, score=c.score,
            status=c.status, tokens=c.tokens, call_ids=c.call_ids or [], verdicts=by_verdicts.get(c.id, []),
            created_at=utc(c.created_at)) for c in candidates],
        calls=calls,
        events=[EventTrace(kind=e.kind, data=e.data or {}, created_at=utc(e.created_at)) for e in events],
        feedback=[FeedbackTrace(success=f.success, comment=f.comment, created_at=utc(f.created_at))
                  for f in feedback],
        totals=totals,
        by_role=group_spend(calls, "role"),
        by_subtask=group_spend(calls, "subtask"),
        by_model=group_spend(calls, "model"),
    )
