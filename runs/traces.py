"""What readers of recorded runs get: pydantic read models (the HTTP service serialises them with
``model_dump(mode="json")``), and spend grouped per role, subtask or model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from seasoned.models.spend import Spend

UNTAGGED = "(untagged)"  # the group of calls that carry no role / subtask tag
SpendKey = Literal["role", "subtask", "model"]


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
    adapter: str | None = None  # the LoRA adapter GGUF a local model decoded with


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


def group_spend(calls: Iterable[CallTrace], key: SpendKey) -> dict[str, Spend]:
    """Totals of ``calls`` per role, subtask or model (calls without that tag under ``UNTAGGED``)."""
    if key not in ("role", "subtask", "model"):
        raise ValueError(f"spend key {key!r}: expected 'role', 'subtask' or 'model'")
    groups: dict[str, Spend] = defaultdict(Spend)
    for call in calls:
        groups[getattr(call, key) or UNTAGGED].add(call)
    return dict(groups)


__all__ = ["UNTAGGED", "CallTrace", "CandidateTrace", "EventTrace", "FeedbackTrace", "RunDetail", "RunSummary",
           "RunTrace", "SpendKey", "SubtaskTrace", "VerdictTrace", "group_spend"]
