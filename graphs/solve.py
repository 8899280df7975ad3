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
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from seasoned.agents import critic, solver, verifier
from seasoned.models import Budget, BudgetExceeded, Gateway, SeasonedError, call_tags

from .context import ContextBuilder
from .stopping import decide_wave
from .strategy import StrategyConfig
from .verifier_stats import VerifierStats
from .voting import majority_stability, vote_counts, weighted_votes

MIN_SAMPLE_TOKENS = 16
REPLY_TOKENS_GUESS = 96  # what a reply is expected to cost before any was seen (memory allowance)
JUDGE_TOKENS = 96
FIRST_FINISH = ("adaptive", "revise", "single")  # best_of_n and self_consistency draw all n, then pick
STUCK_STABILITY = 0.9  # adaptive with a checker: give up when samples keep agreeing on a rejected answer


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


class SolveState(TypedDict, total=False):
    task: str
    subtask: str
    memory_context: str | None  # distilled notes (the system message)
    memory_ids: list[str] | None
    memory: dict | None  # MemoryContext.as_dict(): channel, demonstrations, cached answer, why
    candidates: Annotated[list[dict], operator.add]
    verdicts: Annotated[list[dict], operator.add]
    spend: Annotated[list[dict], operator.add]
    decisions: Annotated[list[dict], operator.add]
    critique: str | None
    result: dict | None


# --- helpers over state ----------------------------------------------------------------------------
def usable(state: SolveState) -> list[dict]:
    return [c for c in state.get("candidates", []) if c["status"] == "ok"]


def env_verdicts(state: SolveState) -> dict[str, dict]:
    return {v["candidate_id"]: v for v in state.get("verdicts", []) if v["verifier"].startswith("env")}


def judge_verdicts(state: SolveState) -> dict[str, dict]:
    return {v["candidate_id"]: v for v in state.get("verdicts", []) if v["verifier"].startswith("judge")}


def spend_of(budget: Budget) -> dict:
    return {"tokens": budget.spent.tokens, "usd": budget.spent.usd, "calls": budget.spent.calls}


def _emit(runtime: Runtime, event: str, **data: Any) -> None:
    writer = getattr(runtime, "stream_writer", None)
    if writer is not None:
        writer({"event": event, **data})


# --- nodes ---------------------------------------------------------------------------------------------
async def retrieve_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
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
    _emit(runtime, "memory", ids=built.ids, channel=built.channel, reason=built.reason,
          demos=[d["id"] for d in built.demos], cached=built.cached is not None,
          context_tokens=built.context_tokens)
    return {"memory_context": built.notes, "memory_ids": built.ids, "memory": built.as_dict()}


def wave_size(state: SolveState, cfg: StrategyConfig) -> int:
    done = len(state.get("candidates", []))
    if cfg.name in ("best_of_n", "self_consistency"):
        return cfg.n
    if cfg.name == "adaptive":
        return max(0, min(cfg.wave_size, cfg.n - done))
    return 1


def plan_samples(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    """Sends for the next wave (or one revision after a critique)."""
    ctx = runtime.context
    cfg = ctx.strategy
    candidates = state.get("candidates", [])
    wave = max((c["wave"] for c in candidates), default=0) + 1
    revision_of = None
    if state.get("critique") and candidates:
        revision_of = _best_failed(state, ctx)
    memory = state.get("memory") or {}
    if memory.get("cached") and not candidates:  # a verified reply to this very task: re-check it first
        return [Send("sample", {"subtask": state.get("subtask", "main"), "wave": 1, "index": 0, "seed": None,
                                "kind": "cached", "text": memory["cached"]["reply"], "messages": [],
                                "memory": memory})]
    messages = solver.build_messages(
        state["task"], context=state.get("memory_context") or "", demonstrations=memory.get("demos"),
        system=ctx.system,
        previous=revision_of["text"] if revision_of else None,
        critique=state.get("critique") if revision_of else None, answer_format=ctx.answer_format,
    )
    size = min(1 if revision_of else wave_size(state, cfg), affordable_samples(state, ctx, messages))
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
    observed = _mean_tokens(state)
    if not observed:
        return max(1, int(left // (prompt + ctx.strategy.max_tokens)))
    return int(left // observed)


async def sample_node(payload: dict, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.strategy
    candidate_id = f"{payload['subtask']}-w{payload['wave']}-{payload['index']}"
    stop = ctx.stop_event(f"{payload['subtask']}-w{payload['wave']}")
    candidate = {"id": candidate_id, "wave": payload["wave"], "index": payload["index"], "kind": payload["kind"],
                 "seed": payload["seed"], "text": "", "answer": None, "status": "ok", "error": None,
                 "trajectory": None}
    budget = ctx.budget.child(name=candidate_id)
    verdicts: list[dict] = []
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
        with call_tags(subtask=payload["subtask"], role="solver"):
            if ctx.actor is not None:
                work = ctx.actor(payload["memory"], budget, payload["seed"])
            else:
                work = ctx.gateway.acomplete(payload["messages"], budget=budget, max_tokens=cfg.max_tokens,
                                             shrink_to_fit=True, temperature=cfg.temperature, seed=payload["seed"])
            outcome = await _race(work, stop)
        if outcome is None:
            candidate["status"] = "cancelled"
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
    candidate.update(spend_of(budget))
    _emit(runtime, "candidate", candidate={k: candidate[k] for k in ("id", "answer", "status", "tokens")},
          verdicts=verdicts)
    return {"candidates": [candidate], "verdicts": verdicts,
            "spend": [{"node": "sample", "role": "solver", **spend_of(budget)}]}


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
    to_judge = _candidates_to_judge(state, ctx)
    if to_judge:
        budget = ctx.budget.child(name=f"{state.get('subtask', 'main')}-judge")
        outcomes = await asyncio.gather(*[_judge(state, ctx, c, budget) for c in to_judge])
        update["verdicts"] = [v for v in outcomes if v is not None]
        update["spend"] = [{"node": "verify", "role": "verifier", **spend_of(budget)}]
        for verdict in update["verdicts"]:
            _emit(runtime, "verdict", verdict=verdict)
    merged: SolveState = {**state, "verdicts": state.get("verdicts", []) + update["verdicts"]}  # type: ignore
    decision = decide(merged, ctx)
    _emit(runtime, "decision", decision=decision)
    update["decisions"] = [decision]
    return update


async def _judge(state: SolveState, ctx: SolveContext, candidate: dict, budget: Budget) -> dict | None:
    try:
        with call_tags(subtask=state.get("subtask", "main"), role="verifier"):
            outcome = await verifier.judge(ctx.gateway, state["task"], candidate["text"], budget=budget,
                                           model=ctx.strategy.judge_model, max_tokens=JUDGE_TOKENS)
    except BudgetExceeded:
        return None
    if not outcome.ok:
        return None
    judgement = outcome.value
    return {"candidate_id": candidate["id"], "verifier": ctx.judge_name(), "passed": judgement.correct,
            "score": judgement.score if judgement.correct else min(judgement.score, 1 - judgement.score),
            "details": judgement.reason[:500]}


def _candidates_to_judge(state: SolveState, ctx: SolveContext) -> list[dict]:
    """Which candidates get an LLM judge now. Identical normalised answers are judged once (a verdict on
    one counts for every candidate with that answer). ``judge=True`` forces judging; otherwise
    ``best_of_n`` and ``adaptive`` judge (the two most voted unjudged answers) only when it pays
    (``judge_pays``); ``revise`` judges its fresh answer (the critique needs a verdict); ``single`` and
    ``self_consistency`` judge only when asked (weighted votes judge every fresh candidate)."""
    cfg = ctx.strategy
    if ctx.can_check or cfg.judge is False:
        return []
    judged = judge_verdicts(state)
    latest_wave = max((c["wave"] for c in usable(state)), default=0)
    fresh = [c for c in usable(state) if c["wave"] == latest_wave and c["id"] not in judged]
    if cfg.name == "self_consistency" and cfg.weighted_vote:
        return fresh  # every vote gets its own weight
    keyed = _keyed(usable(state))
    judged_keys = {c["answer_key"] for c in keyed if c["id"] in judged}
    counts = vote_counts([c["answer_key"] for c in keyed])
    representatives, seen = [], set(judged_keys)
    for c in sorted(keyed, key=lambda c: -counts.get(c["answer_key"], 0)):
        if c["answer_key"] is not None and c["answer_key"] not in seen:
            seen.add(c["answer_key"])
            representatives.append(c)
    if cfg.judge:
        return representatives
    if cfg.name == "revise":
        return [c for c in representatives if c["wave"] == latest_wave][:1]
    if cfg.name in ("single", "self_consistency") or not representatives:
        return []
    if cfg.name == "adaptive" and len(keyed) < 2:
        return []
    return representatives[:2] if judge_pays(state, ctx)[0] else []


def judge_pays(state: SolveState, ctx: SolveContext) -> tuple[bool, str]:
    """Whether a judge call is worth its tokens: only when there are answers to pick between; then the
    confidence it can add (its learned precision over what agreement already gives) per token, against
    what the same tokens buy as samples (the expected rise in agreement from one more sample), and only
    if the budget can pay for it."""
    keyed = _keyed(usable(state))
    answers = [c["answer_key"] for c in keyed]
    majority, stability = majority_stability(answers)
    agree = ctx.stats.precision(ctx.namespace, "agreement")
    current = stability * agree if len(answers) > 1 else 0.0
    judge_precision = ctx.stats.precision(ctx.namespace, ctx.judge_name())
    gain_judge = judge_precision - current
    prompt = sum(len(str(c.get("text", ""))) for c in keyed[:1]) / 3 + 80
    judge_cost = prompt + JUDGE_TOKENS
    if len(vote_counts(answers)) < 2:
        return False, "one answer: nothing for a judge to pick between"
    if gain_judge <= 0:
        return False, f"judge precision {judge_precision:.2f} adds nothing to agreement {current:.2f}"
    if ctx.budget.remaining_tokens() < judge_cost * 2:
        return False, "the budget cannot pay for two judge calls"
    if ctx.strategy.name == "best_of_n":  # every sample is drawn: the judge is the only thing left to buy
        return True, f"judge adds {gain_judge:.2f} confidence"
    per_sample = max(_mean_tokens(state), MIN_SAMPLE_TOKENS)
    if ctx.budget.remaining_tokens() < 2 * (judge_cost + per_sample):
        return False, "small budget: agreement among more samples beats a judge per token"
    share = vote_counts(answers)[majority] / len(answers) if majority is not None else 0.0
    _, if_agrees = majority_stability(answers + [majority])
    _, if_not = majority_stability(answers + ["\x00other"])
    gain_sample = max(share * if_agrees * agree + (1 - share) * if_not * agree - current, 0.0)
    pays = gain_judge / judge_cost > gain_sample / per_sample
    return pays, (f"judge +{gain_judge:.2f} confidence for {judge_cost:.0f} tokens vs a sample "
                  f"+{gain_sample:.3f} for {per_sample:.0f}")


def _keyed(candidates: list[dict]) -> list[dict]:
    return [{**c, "answer_key": solver.normalize_answer(c.get("answer"))} for c in candidates]


def _mean_tokens(state: SolveState) -> float:
    spent = [c.get("tokens", 0) for c in state.get("candidates", []) if c["status"] == "ok"]
    return sum(spent) / len(spent) if spent else 0.0


def candidate_confidence(state: SolveState, ctx: SolveContext, candidate: dict) -> tuple[float, str]:
    """How likely this candidate is right, and which verifier says so, each discounted by its precision."""
    env = env_verdicts(state).get(candidate["id"])
    if env is not None:
        return (ctx.stats.precision(ctx.namespace, ctx.checker_name) if env["passed"] else 0.0), ctx.checker_name
    keyed = _keyed(usable(state))
    answers = [c["answer_key"] for c in keyed]
    key = solver.normalize_answer(candidate.get("answer"))
    majority, stability = majority_stability(answers)
    share = stability if key is not None and key == majority and len(answers) > 1 else 0.0
    best = (share * ctx.stats.precision(ctx.namespace, "agreement"), "agreement")
    judged = judge_verdicts(state)
    for other in keyed:
        verdict = judged.get(other["id"])
        if verdict and other["answer_key"] == key and verdict["passed"]:
            judged_conf = verdict["score"] * ctx.stats.precision(ctx.namespace, verdict["verifier"])
            best = max(best, (judged_conf, verdict["verifier"]))
    return best


def decide(state: SolveState, ctx: SolveContext) -> dict:
    """What to do after a wave, and why (recorded in the trace)."""
    cfg = ctx.strategy
    candidates = state.get("candidates", [])
    ok = usable(state)
    env = env_verdicts(state)
    passed = [c for c in ok if env.get(c["id"], {}).get("passed")]
    if passed:
        return {"action": "select", "reason": f"verified by {ctx.checker_name}", "samples": len(candidates)}
    if cfg.name == "adaptive" and ctx.can_check and ctx.stopping:  # the learned give-up rule
        learned = _learned_stop(ok, candidates, ctx)
        if learned["action"] == "select" or not _budget_spent(state, ctx):
            return learned
    if _budget_spent(state, ctx):
        return {"action": "select", "reason": "budget spent", "samples": len(candidates)}
    if candidates and all(c["kind"] == "cached" for c in candidates):
        return {"action": "sample", "samples": len(candidates),
                "reason": "the cached answer to this task was not confirmed: sampling"}
    if cfg.name in ("single", "best_of_n", "self_consistency"):
        return {"action": "select", "reason": f"{cfg.name}: all samples drawn", "samples": len(candidates)}
    best_conf = max((candidate_confidence(state, ctx, c)[0] for c in ok), default=0.0)
    if cfg.name == "revise":
        revisions = sum(c["kind"] == "revision" for c in candidates)
        if not ctx.can_check and best_conf >= cfg.stop_confidence:
            return {"action": "select", "reason": f"confidence {best_conf:.2f}", "samples": len(candidates)}
        if revisions >= cfg.max_rounds or not ok:
            return {"action": "select", "reason": f"revise: {revisions} rounds done", "samples": len(candidates)}
        return {"action": "critique", "reason": "not verified: critique and revise", "samples": len(candidates)}
    # adaptive
    if len(candidates) >= cfg.n:
        return {"action": "select", "reason": f"adaptive: {cfg.n} samples drawn", "samples": len(candidates)}
    answers = [c["answer_key"] for c in _keyed(ok)]
    if ctx.can_check:
        _, stability = majority_stability(answers)
        if len(answers) >= 2 * cfg.wave_size and stability >= STUCK_STABILITY:
            return {"action": "select", "samples": len(candidates),
                    "reason": f"adaptive: samples keep agreeing on a rejected answer (stability {stability:.2f})"}
        return {"action": "sample", "reason": "no candidate passed the check yet", "samples": len(candidates)}
    if best_conf >= cfg.stop_confidence:
        return {"action": "select", "reason": f"adaptive: confidence {best_conf:.2f} >= {cfg.stop_confidence}",
                "samples": len(candidates)}
    return {"action": "sample", "samples": len(candidates),
            "reason": f"adaptive: best confidence {best_conf:.2f} < {cfg.stop_confidence}"}


def _learned_stop(ok: list[dict], candidates: list[dict], ctx: SolveContext) -> dict:
    """Adaptive with a checker and a learned prior: the next wave only when its expected gain per token
    (posterior predictive after the failures so far, times what success here is worth downstream) is
    above the price a token has elsewhere; the numbers go into the decision record."""
    failures = sum(c["kind"] != "cached" for c in ok)
    wave = decide_wave(ctx.stopping, failures)
    return {"action": "sample" if wave.go else "select", "samples": len(candidates),
            "reason": f"adaptive: {wave.reason(failures)}", "p_next_wave": round(wave.success, 4),
            "gain_per_token": wave.gain_per_token, "price": wave.price}


def _budget_spent(state: SolveState, ctx: SolveContext) -> bool:
    if ctx.budget.exhausted():
        return True
    if any(c["status"] == "budget" for c in state.get("candidates", [])):
        return True
    return ctx.budget.remaining_tokens() < max(_mean_tokens(state) * 0.5, MIN_SAMPLE_TOKENS * 2)


def route_after_verify(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    action = state["decisions"][-1]["action"]
    if action == "sample":
        return plan_samples({**state, "critique": None}, runtime)  # type: ignore[arg-type]
    return action


async def critique_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    target = _best_failed(state, ctx)
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
    return {"critique": text, "spend": [{"node": "critique", "role": "critic", **spend_of(budget)}]}


def route_after_critique(state: SolveState, runtime: Runtime[SolveContext]) -> list[Send] | str:
    if _budget_spent(state, runtime.context):
        return "select"
    return plan_samples(state, runtime)


def _best_failed(state: SolveState, ctx: SolveContext) -> dict | None:
    ok = usable(state)
    if not ok:
        return None
    return max(ok, key=lambda c: (candidate_confidence(state, ctx, c)[0], c["wave"]))


async def credit_memory_channel(state: SolveState, ctx: SolveContext) -> None:
    """Every sample the environment checked credits the memory channel it was drawn with."""
    memory = state.get("memory")
    if ctx.memory is None or memory is None or not ctx.can_check:
        return
    checks = env_verdicts(state)
    drawn = [c for c in usable(state) if c["kind"] != "cached" and c["id"] in checks]
    passed = sum(bool(checks[c["id"]]["passed"]) for c in drawn)
    await ctx.memory.acredit(memory.get("channel", "none"), passed, len(drawn) - passed)


async def select_node(state: SolveState, runtime: Runtime[SolveContext]) -> dict:
    ctx = runtime.context
    cfg = ctx.strategy
    await credit_memory_channel(state, ctx)
    ok = usable(state)
    decision = (state.get("decisions") or [{"reason": ""}])[-1]
    if not ok:
        result = {"answer": None, "text": "", "verified": False, "confidence": 0.0, "verified_by": None,
                  "candidate_id": None, "stop_reason": decision["reason"] or "no usable candidate"}
        return {"result": result}
    scored = [(candidate_confidence(state, ctx, c), c) for c in ok]
    env = env_verdicts(state)
    if cfg.name == "self_consistency" and not any(env.get(c["id"], {}).get("passed") for c in ok):
        keyed = _keyed(ok)
        judged = judge_verdicts(state)
        weights = [judged[c["id"]]["score"] if cfg.weighted_vote and c["id"] in judged else 1.0 for c in keyed]
        votes = weighted_votes([c["answer_key"] for c in keyed], weights)
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
