"""What a run returns: ``RunResult`` (answer, verification, what it cost, its trace), progress ``Event``s,
and how both are read off a finished graph's state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, computed_field
from seasoned.models import Spend

from .solve import SolveContext
from .state import Candidate, VerdictRecord


class RunResult(BaseModel):
    """What a run produced and what it cost."""

    run_id: str
    task: str
    answer: str | None
    text: str = ""
    verified: bool = False
    confidence: float = 0.0
    verified_by: str | None = None
    reward: float | None = None  # the environment's reward for the chosen answer, when it judged it
    stop_reason: str = ""
    strategy: str = ""
    model: str = ""
    candidates: list[Candidate] = Field(default_factory=list)
    verdicts: list[VerdictRecord] = Field(default_factory=list)
    decisions: list[dict] = Field(default_factory=list)  # wave decisions (Decision), or allocations when multi-stage
    memory_ids: list[str] = Field(default_factory=list)
    memory: dict | None = None  # channel chosen, why, demonstrations used, cache hit
    subtasks: list[dict] = Field(default_factory=list)
    plan_source: str | None = None  # env | steps | planner | fallback
    plan_reason: str | None = None  # why (a fallback to one subtask says what was wrong with the plan)
    curation: dict | None = None
    spend: Spend = Field(default_factory=Spend)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def judge(self) -> dict | None:
        """What the LLM judge cost and gave: its tokens and their share of the run's, its verdicts, and the
        judgements it could not give ("no verdict": replies that could not be read). None without a judge."""
        counts = [judge_counts(self.verdicts), *((s.get("result") or {}).get("judge") or {} for s in self.subtasks)]
        return judge_summary(self.spend, sum(c.get("verdicts", 0) for c in counts),
                             sum(c.get("no_verdict", 0) for c in counts))


def judge_counts(verdicts: list) -> dict:
    """How many LLM-judge records are verdicts, and how many are "no verdict"."""
    judged = [v for v in verdicts if str(v["verifier"]).startswith("judge")]
    return {"verdicts": sum(v["passed"] is not None for v in judged),
            "no_verdict": sum(v["passed"] is None for v in judged)}


def judge_summary(spend: Spend, verdicts: int, no_verdict: int) -> dict | None:
    """``RunResult.judge`` from a run's spend (tokens per role) and its judge's verdict counts."""
    tokens = spend.by_role.get("verifier", 0)
    if not tokens and not verdicts + no_verdict:
        return None
    return {"tokens": tokens, "share": round(tokens / spend.tokens, 4) if spend.tokens else 0.0,
            "verdicts": verdicts, "no_verdict": no_verdict}


@dataclass
class Event:
    """A progress event: ``kind`` is node (a node finished), candidate, verdict, decision, memory or result."""

    kind: str
    run_id: str
    node: str | None = None
    data: dict = field(default_factory=dict)


def event_of(run_id: str, mode: str, chunk: Any) -> Event | None:
    """The event for one chunk of ``graph.astream(stream_mode=["updates", "custom"])``."""
    if mode == "custom" and isinstance(chunk, dict):
        data = dict(chunk)
        return Event(data.pop("event", "custom"), run_id, data=data)
    if mode == "updates" and isinstance(chunk, dict):
        for node, update in chunk.items():
            return Event("node", run_id, node=node, data={"keys": sorted((update or {}).keys())})
    return None


def run_spend(store: Any, ledger: Any, run_id: str, started: float) -> Spend:
    """Every call of the run: the recorded ones when runs are recorded (so a resumed run counts the calls
    made before it was interrupted, in another process), else this process's ledger."""
    spend = store.spend(run_id) if store is not None else ledger.totals(run_id=run_id)
    spend.seconds = round(time.perf_counter() - started, 3)
    return spend


def build_result(run_id: str, values: dict, context: SolveContext, model: str, spend: Spend) -> RunResult:
    """The result of a finished run, from its graph's final state."""
    common = {"run_id": run_id, "task": values.get("task", ""), "strategy": context.strategy.label,
              "model": model, "decisions": values.get("decisions", []),
              "memory_ids": values.get("memory_ids") or [], "spend": spend}
    if "subtasks" in values:  # multi-stage
        final = values.get("final") or {}
        results = values.get("results", {})
        used = [i for r in results.values() for i in (r or {}).get("memory_ids") or []]
        common["memory_ids"] = list(dict.fromkeys([*common["memory_ids"], *used]))
        allocations = values.get("allocations", {})
        subtasks = [{**s, "allocation": allocations.get(s["id"]), "result": results.get(s["id"])}
                    for s in values.get("subtasks", [])]
        solved = sum(bool((s["result"] or {}).get("verified")) for s in subtasks)
        return RunResult(**common, answer=final.get("answer"), text=final.get("text", ""),
                         reward=final.get("reward"),
                         verified=bool(final.get("verified")), verified_by=final.get("verified_by"),
                         confidence=1.0 if final.get("verified") else 0.0,
                         stop_reason=f"{len(subtasks)} subtask(s), {solved} verified",
                         subtasks=subtasks, plan_source=values.get("plan_source"),
                         plan_reason=values.get("plan_reason"),
                         curation=values.get("curation"))
    outcome = values.get("result") or {}
    if values.get("memory") is not None:
        common["memory"] = memory_summary(values["memory"], values.get("candidates", []), outcome)
    chosen = [v["score"] for v in values.get("verdicts", [])
              if v["candidate_id"] == outcome.get("candidate_id") and v["verifier"].startswith("env")]
    return RunResult(**common, answer=outcome.get("answer"), text=outcome.get("text", ""),
                     reward=chosen[0] if chosen else None,
                     verified=bool(outcome.get("verified")), confidence=float(outcome.get("confidence") or 0.0),
                     verified_by=outcome.get("verified_by"), stop_reason=outcome.get("stop_reason", ""),
                     candidates=values.get("candidates", []), verdicts=values.get("verdicts", []))


def memory_summary(memory: dict, candidates: list[Candidate], outcome: dict) -> dict:
    """``RunResult.memory``: the channel chosen and why, the demonstrations shown, whether the cached
    answer was the one accepted."""
    cached = next((c for c in candidates if c["kind"] == "cached"), None)
    return {"channel": memory.get("channel"), "reason": memory.get("reason"),
            "demonstrations": [d["id"] for d in memory.get("demos") or []],
            "notes": bool(memory.get("notes")), "context_tokens": memory.get("context_tokens"),
            "cache_hit": bool(cached and cached["id"] == outcome.get("candidate_id") and outcome.get("verified"))}
