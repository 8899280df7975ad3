"""The per-subtask test-time scaling graph (LangGraph).

    retrieve -> sample* (Send fan-out, one task per candidate) -> verify -> decide
        decide: sample another wave | critique -> sample (a revision) | select -> END

- ``sample`` makes one candidate: a gateway call from the solver's prompt, or one acting episode for
  interactive environments. When the environment can check answers, the candidate is checked as soon
  as it exists; the first one that passes sets the wave's stop event and its siblings still in flight
  are cancelled (first-finish); what they used is still accounted by the gateway.
- ``verify`` adds LLM-judge verdicts where the strategy (or, for ``adaptive``, the situation) calls
  for them, then decides what to do next and records why.
- ``select`` picks the answer: a candidate the environment accepted, else the best by judge scores and
  agreement, discounted by each verifier's observed precision.

Runtime objects (gateway, budget, checker, memory) travel in the LangGraph runtime context, never in
the checkpointed state, so a killed run resumes from its last checkpoint with the same context, and
samples that had finished are not redone (LangGraph keeps the writes of finished tasks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from seasoned.agents import critic, solver, verifier
from seasoned.models import Budget, BudgetExceeded, Gateway, ModelConfigError, SeasonedError, call_tags
from seasoned.runs.verifier_stats import VerifierStats

from .context import ContextBuilder
from .decide import (
    JUDGE_TOKENS,
    MIN_SAMPLE_TOKENS,
    best_failed,
    budget_spent,
    candidate_confidence,
    candidates_to_judge,
    decide,
    first_wave_decision,
)
from .state import (
    Candidate,
    SolveState,
    VerdictRecord,
    emit,
    env_verdicts,
    judge_verdicts,
    mean_tokens,
    no_verdict,
    usable,
    with_answer_keys,
)
from .strategy import StrategyConfig
from .voting import weighted_votes
from .watch import candidate_scope

REPLY_TOKENS_GUESS = 96  # what a reply is expected to cost before any was seen (memory allowance)
FIRST_FINISH = ("adaptive", "revise", "single")  # best_of_n and self_consistency draw all n, then pick


class CheckResult(Protocol):
    reward: float
    passed: bool
    details: Any


Checker = Callable[[str], Awaitable[CheckResult]]


@dataclass
class ActorOutput:
    """One acting episode as a candidate: its final text (e.g. a diff) and the environment's verdict."""

    text: str
    verdict: CheckResult | None = None
    trajectory: list[dict] = field(default_factory=list)


#: One acting episode: (the memory chosen for this solve, as ``MemoryContext.as_dict()``, budget, seed).
Actor = Callable[[dict, Budget, "int | None"], Awaitable[ActorOutput]]


@dataclass
class SolveContext:
    """What one solve needs besides its state (not checkpointed; rebuilt on resume)."""

    gateway: Gateway
    budget: Budget
    strategy: StrategyConfig
    namespace: str = "default"
    checker: Checker | None = None
    checker_name: str = "env"
    extract: Callable[[str], str | None] = solver.extract_answer
    answer_format: str | None = solver.ANSWER_FORMAT
    memory: ContextBuilder | None = None  # experience: demonstrations and notes, learned channel
    system: str | None = None  # the solver's system prompt (None: the default)
    actor: Actor | None = None
    stopping: dict | None = None  # learned give-up rule (``stopping.spec``): prior, price, value of later stages
    stats: VerifierStats = field(default_factory=VerifierStats)
    stop_events: dict[str, asyncio.Event] = field(default_factory=dict)

    def stop_event(self, key: str) -> asyncio.Event:
        return self.stop_events.setdefault(key, asyncio.Event())

    @property
    def can_check(self) -> bool:
        return (self.checker is not None or self.actor is not None) and self.strategy.use_env_check

    def judge_name(self) -> str:
        return f"judge:{self.strategy.judge_model or self.gateway.model}"


# --- nodes ---------------------------------------------------------------------------------------------
async def retrieve_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    update = await _memory_for(state, runtime)
    opening = first_wave_decision(runtime.context)  # the give-up rule before any sample, too
    if opening is not None and not (update.get("memory") or state.get("memory") or {}).get("cached"):
        update["decisions"] = [opening]
        emit(runtime, "decision", decision=opening)
    return update


async def _memory_for(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    if ctx.memory is None:
        if state.get("memory_context") is not None:  # given by a parent graph
            return {}
        return {"memory_context": "", "memory_ids": [], "memory": None}
    cfg = ctx.strategy
    # strategies that draw all n samples pay for memory n times; first-finish ones as long as they go on
    samples = cfg.n if cfg.name in ("best_of_n", "self_consistency") else 1
    built = await ctx.memory.build(state["task"], ctx.budget, samples=samples, max_samples=cfg.n,
                                   reply_tokens=min(cfg.max_tokens, REPLY_TOKENS_GUESS))
    emit(runtime, "memory", ids=built.ids, channel=built.channel, reason=built.reason,
          demos=[d["id"] for d in built.demos], cached=built.cached is not None,
          context_tokens=built.context_tokens, adapter=built.adapter)
    return {"memory_context": built.notes, "memory_ids": built.ids, "memory": built.as_dict()}


def wave_size(state: SolveState, cfg: StrategyConfig, checked: bool = False) -> int:
    """Samples in the next wave; ``adaptive`` with a check starts with ``first_wave`` (agreement needs more)."""
    done = len(state.get("candidates", []))
    if cfg.name in ("best_of_n", "self_consistency"):
        return cfg.n
    if cfg.name == "adaptive":
        size = cfg.first_wave if checked and not done and cfg.first_wave else cfg.wave_size
        return max(0, min(size, cfg.n - done))
    return 1


def plan_samples(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    """Sends for the next wave (or one revision after a critique)."""
    ctx = runtime.context
    cfg = ctx.strategy
    candidates = state.get("candidates", [])
    wave = max((c["wave"] for c in candidates), default=0) + 1
    revision_of = None
    if state.get("critique") and candidates:
        revision_of = best_failed(state, ctx)
    memory = state.get("memory") or {}
    if memory.get("cached") and not candidates:  # a verified reply to this very task: re-check it first
        return [Send("sample", {"subtask": state.get("subtask", "main"), "wave": 1, "index": 0, "seed": None,
                                "kind": "cached", "text": memory["cached"]["reply"], "messages": [],
                                "memory": memory})]
    if not candidates and (state.get("decisions") or [{}])[-1].get("action") == "select":
        return "select"  # given up before the first wave: not worth its tokens
    messages = solver.build_messages(
        state["task"], context=state.get("memory_context") or "", demonstrations=memory.get("demos"),
        system=ctx.system,
        previous=revision_of["text"] if revision_of else None,
        critique=state.get("critique") if revision_of else None, answer_format=ctx.answer_format,
    )
    size = min(1 if revision_of else wave_size(state, cfg, ctx.can_check), affordable_samples(state, ctx, messages))
    if size == 0:
        return "select"
    base_seed = cfg.seed if cfg.seed is not None else None
    sends = []
    for index in range(size):
        seed = None if base_seed is None else base_seed + len(candidates) + index
        sends.append(Send("sample", {
            "subtask": state.get("subtask", "main"), "wave": wave, "index": index, "seed": seed,
            "kind": "revision" if revision_of else "sample", "messages": messages,
            "memory": {**memory, "notes": state.get("memory_context") or ""},
        }))
    return sends


def affordable_samples(state: SolveState, ctx: SolveContext, messages: list[dict]) -> int:
    """How many samples the budget can still pay for (a wave never outruns its budget; the first wave
    always gets one sample if its prompt fits, shrunk to what is left)."""
    left = ctx.budget.remaining_tokens()
    if left == float("inf"):
        return 1 << 30
    prompt = sum(len(str(m.get("content", ""))) for m in messages) / 3
    if left < prompt + MIN_SAMPLE_TOKENS:
        return 0
    observed = mean_tokens(state)
    if not observed:
        return max(1, int(left // (prompt + ctx.strategy.max_tokens)))
    return int(left // observed)


async def sample_node(payload: dict, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.strategy
    candidate_id = f"{payload['subtask']}-w{payload['wave']}-{payload['index']}"
    stop = ctx.stop_event(f"{payload['subtask']}-w{payload['wave']}")
    candidate: Candidate = {"id": candidate_id, "wave": payload["wave"], "index": payload["index"], "kind": payload["kind"],
                 "seed": payload["seed"], "text": "", "answer": None, "status": "ok", "error": None,
                 "trajectory": None}
    budget = ctx.budget.child(name=candidate_id)
    verdicts: list[VerdictRecord] = []
    if stop.is_set():
        candidate["status"] = "cancelled"
    elif payload["kind"] == "cached":  # no model call: the stored reply, checked like any candidate
        candidate["text"] = payload["text"]
        candidate["answer"] = ctx.extract(candidate["text"])
        if ctx.checker is not None and cfg.use_env_check:
            verdict = await ctx.checker(candidate["text"])
            verdicts.append({"candidate_id": candidate_id, "verifier": ctx.checker_name,
                             "passed": bool(verdict.passed), "score": float(verdict.reward),
                             "details": _short(verdict.details)})
    else:
        with call_tags(subtask=payload["subtask"], role="solver"), candidate_scope(candidate_id):
            if ctx.actor is not None:
                work = ctx.actor(payload["memory"], budget, payload["seed"])
            else:
                work = ctx.gateway.acomplete(payload["messages"], budget=budget, max_tokens=cfg.max_tokens,
                                             shrink_to_fit=True, temperature=cfg.temperature, seed=payload["seed"],
                                             **adapter_of(payload.get("memory")))
            outcome = await _race(work, stop)
        if outcome is None:
            candidate["status"] = "cancelled"
        elif isinstance(outcome, ModelConfigError):  # a refused key, a model the provider does not know
            raise outcome
        elif isinstance(outcome, BudgetExceeded):
            candidate.update(status="budget", error=str(outcome))
        elif isinstance(outcome, BaseException):
            candidate.update(status="error", error=str(outcome))
        else:
            verdict = None
            if isinstance(outcome, ActorOutput):
                candidate["text"], verdict = outcome.text, outcome.verdict
                candidate["trajectory"] = outcome.trajectory
            else:
                candidate["text"] = outcome.text
            candidate["answer"] = ctx.extract(candidate["text"])
            if verdict is None and ctx.checker is not None and cfg.use_env_check:
                verdict = await ctx.checker(candidate["text"])
            if verdict is not None and cfg.use_env_check:
                verdicts.append({"candidate_id": candidate_id, "verifier": ctx.checker_name,
                                 "passed": bool(verdict.passed), "score": float(verdict.reward),
                                 "details": _short(verdict.details)})
                if verdict.passed and cfg.name in FIRST_FINISH:
                    stop.set()  # first-finish: siblings still running are cancelled
    candidate.update(budget.spent.counts())
    emit(runtime, "candidate", candidate={k: candidate[k] for k in ("id", "answer", "status", "tokens")},
          verdicts=verdicts)
    return {"candidates": [candidate], "verdicts": verdicts,
            "spend": [{"node": "sample", "role": "solver", **budget.spent.counts()}]}


def adapter_of(memory: dict | None) -> dict:
    """The gateway argument that draws a sample with the memory's LoRA adapter (adapter channels), if any."""
    adapter = (memory or {}).get("adapter")
    return {"adapter": adapter["path"]} if adapter else {}


async def _race(work: Awaitable, stop: asyncio.Event) -> Any:
    """The work's result (or exception), or None when the stop event fired first (work cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task not in done:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    try:
        return task.result()
    except (SeasonedError, ValueError) as exc:
        return exc


def _short(details: Any, limit: int = 2000) -> str:
    text = details if isinstance(details, str) else repr(details)
    return text if len(text) <= limit else text[:limit] + "..."


async def verify_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    update: dict = {"verdicts": [], "spend": []}
    to_judge = candidates_to_judge(state, ctx)
    if to_judge:
        budget = ctx.budget.child(name=f"{state.get('subtask', 'main')}-judge")
        outcomes = await asyncio.gather(*[_judge(state, ctx, c, budget) for c in to_judge])
        update["verdicts"] = [v for v in outcomes if v is not None]
        update["spend"] = [{"node": "verify", "role": "verifier", **budget.spent.counts()}]
        for verdict in update["verdicts"]:
            emit(runtime, "verdict", verdict=verdict)
    merged: SolveState = {**state, "verdicts": state.get("verdicts", []) + update["verdicts"]}  # type: ignore
    decision = decide(merged, ctx)
    emit(runtime, "decision", decision=decision)
    update["decisions"] = [decision]
    return update


async def _judge(state: SolveState, ctx: SolveContext, candidate: Candidate, budget: Budget) -> VerdictRecord | None:
    try:
        with call_tags(subtask=state.get("subtask", "main"), role="verifier"):
            outcome = await verifier.judge(ctx.gateway, state["task"], candidate["text"], budget=budget,
                                           model=ctx.strategy.judge_model, max_tokens=JUDGE_TOKENS)
    except BudgetExceeded:
        return None
    if not outcome.ok:  # replies that could not be read: recorded, as their tokens count
        return no_verdict(candidate["id"], ctx.judge_name(), outcome.failure or "no reply")
    judgement = outcome.value
    return {"candidate_id": candidate["id"], "verifier": ctx.judge_name(), "passed": judgement.correct,
            "score": judgement.score if judgement.correct else min(judgement.score, 1 - judgement.score),
            "details": judgement.reason[:500]}


def route_after_verify(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    action = state["decisions"][-1]["action"]
    if action == "sample":
        return plan_samples({**state, "critique": None}, runtime)  # type: ignore[arg-type]
    return action


async def critique_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    target = best_failed(state, ctx)
    feedback = env_verdicts(state).get(target["id"], {}).get("details", "") if target else ""
    judged = judge_verdicts(state).get(target["id"]) if target else None
    if judged and not feedback:
        feedback = judged.get("details", "")
    budget = ctx.budget.child(name=f"{state.get('subtask', 'main')}-critique")
    text = "The previous attempt was not accepted."
    try:
        with call_tags(subtask=state.get("subtask", "main"), role="critic"):
            outcome = await critic.critique(ctx.gateway, state["task"], target["text"] if target else "",
                                            feedback=str(feedback)[:1500], budget=budget)
        if outcome.ok:
            text = outcome.value.as_text()
    except BudgetExceeded:
        pass
    return {"critique": text, "spend": [{"node": "critique", "role": "critic", **budget.spent.counts()}]}


def route_after_critique(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    if budget_spent(state, runtime.context):
        return "select"
    return plan_samples(state, runtime)


async def credit_memory_channel(state: SolveState, ctx: SolveContext) -> None:
    """The question credits the memory channel its samples were drawn with (once: see ``memory.channels``)."""
    memory = state.get("memory")
    if ctx.memory is None or memory is None or not ctx.can_check:
        return
    checks = env_verdicts(state)
    drawn = [c for c in usable(state) if c["kind"] != "cached" and c["id"] in checks]
    passed = sum(bool(checks[c["id"]]["passed"]) for c in drawn)
    await ctx.memory.acredit(memory.get("channel", "none"), passed, len(drawn))


async def select_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.strategy
    await credit_memory_channel(state, ctx)
    ok = usable(state)
    decision = (state.get("decisions") or [{"reason": ""}])[-1]
    if decision.get("action") == "sample":  # another wave was wanted, but the budget cannot pay for a sample
        decision = {**decision, "reason": f"budget spent (the last decision: {decision['reason']})"}
    if not ok:
        result = {"answer": None, "text": "", "verified": False, "confidence": 0.0, "verified_by": None,
                  "candidate_id": None, "stop_reason": decision["reason"] or "no usable candidate"}
        return {"result": result}
    scored = [(candidate_confidence(state, ctx, c), c) for c in ok]
    env = env_verdicts(state)
    if cfg.name == "self_consistency" and not any(env.get(c["id"], {}).get("passed") for c in ok):
        voters = with_answer_keys(ok)
        judged = judge_verdicts(state)
        weights = [judged[c["id"]]["score"] if cfg.weighted_vote and c["id"] in judged else 1.0 for c in voters]
        votes = weighted_votes([c["answer_key"] for c in voters], weights)
        if votes:
            winner = max(votes, key=votes.get)
            scored = [((conf, by), c) for (conf, by), c in scored if solver.normalize_answer(c["answer"]) == winner]
    (confidence, verified_by), best = max(
        scored, key=lambda item: (item[0][0], env.get(item[1]["id"], {}).get("score", 0.0), -item[1]["wave"])
    )
    env_passed = bool(env.get(best["id"], {}).get("passed"))
    verified = env_passed or (not ctx.can_check and confidence >= cfg.stop_confidence)
    result = {"answer": best["answer"], "text": best["text"], "verified": verified,
              "confidence": round(confidence, 4), "verified_by": verified_by if verified else None,
              "candidate_id": best["id"], "stop_reason": decision["reason"]}
    return {"result": result}


def build_solve_graph() -> StateGraph:
    """The uncompiled graph; compile it with a checkpointer, or mount it in a graph of your own."""
    graph = StateGraph(SolveState, context_schema=SolveContext)
    graph.add_node("retrieve", retrieve_node)
    graph.add_node("sample", sample_node)
    graph.add_node("verify", verify_node)
    graph.add_node("critique", critique_node)
    graph.add_node("select", select_node)
    graph.add_edge(START, "retrieve")
    graph.add_conditional_edges("retrieve", plan_samples, ["sample", "select"])
    graph.add_edge("sample", "verify")
    graph.add_conditional_edges("verify", route_after_verify, ["sample", "critique", "select"])
    graph.add_conditional_edges("critique", route_after_critique, ["sample", "select"])
    graph.add_edge("select", END)
    return graph
