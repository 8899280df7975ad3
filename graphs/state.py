"""The typed state of the graphs: what a candidate, a verdict and a decision are, the solve and task
states built from them, and small helpers that read them.

Candidates, verdicts and decisions are checkpointed by LangGraph, recorded by the run store and returned
in ``RunResult``, so they are plain dicts typed with ``TypedDict`` (``typing_extensions``: pydantic reads
these on Python 3.11).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired

from langgraph.runtime import Runtime
from seasoned.agents import solver
from typing_extensions import TypedDict


class Candidate(TypedDict):
    """One attempt at a subtask: a sampled reply, a revision, an acting episode, or the cached answer."""

    id: str  # "<subtask>-w<wave>-<index>"
    wave: int
    index: int
    kind: Literal["sample", "revision", "cached"]
    seed: int | None
    text: str
    answer: str | None  # what the extractor read from ``text``
    status: Literal["ok", "cancelled", "budget", "error"]
    error: str | None
    trajectory: list[dict] | None  # acting steps, for interactive environments
    tokens: NotRequired[int]
    usd: NotRequired[float]
    calls: NotRequired[int]


class VerdictRecord(TypedDict):
    """A verifier's judgement of one candidate as the graphs record it (``verifier`` is ``env:<name>`` or
    ``judge:<model>``). Not to be confused with ``seasoned.envs.Verdict``, what checkers return. A judge
    whose replies could not be read leaves a "no verdict": ``passed`` and ``score`` None, ``details`` why."""

    candidate_id: str
    verifier: str
    passed: bool | None
    score: float | None
    details: str


class Decision(TypedDict):
    """What the solve loop did after a wave, and why (the learned give-up rule adds its numbers)."""

    action: Literal["sample", "critique", "select"]
    reason: str
    samples: int
    p_next_wave: NotRequired[float]
    gain_per_token: NotRequired[float]
    price: NotRequired[float]


class SpendEntry(TypedDict):
    """What one node spent (``spend`` in the states)."""

    node: str
    role: str
    tokens: int
    usd: float
    calls: int


class SolveState(TypedDict, total=False):
    task: str
    subtask: str
    memory_context: str | None  # distilled notes (the system message)
    memory_ids: list[str] | None
    memory: dict | None  # MemoryContext.as_dict(): channel, demonstrations, cached answer, why
    candidates: Annotated[list[Candidate], operator.add]
    verdicts: Annotated[list[VerdictRecord], operator.add]
    spend: Annotated[list[SpendEntry], operator.add]
    decisions: Annotated[list[Decision], operator.add]
    critique: str | None
    result: dict | None


def merge_dicts(left: dict | None, right: dict | None) -> dict:
    return {**(left or {}), **(right or {})}


class TaskState(TypedDict, total=False):
    task: str
    subtasks: list[dict]
    plan_source: str  # env | steps | planner | fallback
    plan_reason: str  # why that source (for a fallback: what was wrong with the planner's plan)
    memory_context: str | None
    memory_ids: list[str] | None
    allocations: Annotated[dict, merge_dicts]
    results: Annotated[dict, merge_dicts]
    spend: Annotated[list[SpendEntry], operator.add]
    decisions: Annotated[list[dict], operator.add]
    final: dict | None
    curation: dict | None


# --- helpers over state ----------------------------------------------------------------------------
def usable(state: SolveState) -> list[Candidate]:
    return [c for c in state.get("candidates", []) if c["status"] == "ok"]


def env_verdicts(state: SolveState) -> dict[str, VerdictRecord]:
    return {v["candidate_id"]: v for v in state.get("verdicts", []) if v["verifier"].startswith("env")}


def judge_verdicts(state: SolveState, *, with_no_verdict: bool = False) -> dict[str, VerdictRecord]:
    """The LLM judges' verdicts by candidate: the evidence they give. A judge that accepted two different
    answers to the one question has told nothing by accepting (a small model's judge, constrained to answer
    in JSON, may accept everything): its acceptances are left out then, its rejections kept.
    ``with_no_verdict``: every judged candidate, verdict or not, as recorded."""
    records = {v["candidate_id"]: v for v in state.get("verdicts", []) if v["verifier"].startswith("judge")}
    if with_no_verdict:
        return records
    verdicts = {cid: v for cid, v in records.items() if v["passed"] is not None}
    if judge_contradicted(state):
        verdicts = {cid: v for cid, v in verdicts.items() if not v["passed"]}
    return verdicts


def judge_contradicted(state: SolveState) -> bool:
    """Whether an LLM judge accepted two different (normalised) answers to the one question."""
    keys = {c["id"]: c["answer_key"] for c in with_answer_keys(state.get("candidates", []))}
    accepted = {keys.get(v["candidate_id"]) for v in state.get("verdicts", [])
                if v["verifier"].startswith("judge") and v["passed"]}
    return len(accepted) > 1


def no_verdict(candidate_id: str, verifier: str, why: str) -> VerdictRecord:
    """The record of a judge call that gave no usable verdict (its tokens are spent all the same)."""
    return {"candidate_id": candidate_id, "verifier": verifier, "passed": None, "score": None,
            "details": f"no verdict: {why}"[:500]}


def with_answer_keys(candidates: list[Candidate]) -> list[dict]:
    """The candidates with ``answer_key``: their normalised answer (what votes compare)."""
    return [{**c, "answer_key": solver.normalize_answer(c.get("answer"))} for c in candidates]


def mean_tokens(state: SolveState) -> float:
    spent = [c.get("tokens", 0) for c in state.get("candidates", []) if c["status"] == "ok"]
    return sum(spent) / len(spent) if spent else 0.0


def emit(runtime: Runtime, event: str, **data: Any) -> None:
    """A custom stream event (``stream_mode="custom"``) from a node; nothing outside a streamed run."""
    writer = getattr(runtime, "stream_writer", None)
    if writer is not None:
        writer({"event": event, **data})
