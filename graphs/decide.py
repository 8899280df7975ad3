"""What the solve loop does after each wave, and which candidate it trusts: confidence from the
verifiers (each discounted by its observed precision), when an LLM judge pays for its tokens, when to
sample again, critique, or stop (with a check: the give-up rule of ``stopping``, an expected-value decision)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seasoned.agents import solver

from .state import (
    Candidate,
    Decision,
    SolveState,
    env_verdicts,
    judge_contradicted,
    judge_verdicts,
    mean_tokens,
    usable,
    with_answer_keys,
)
from .stopping import decide_wave
from .success_model import repeat_share, sample_pattern
from .voting import majority_stability, vote_counts

if TYPE_CHECKING:
    from .solve import SolveContext

MIN_SAMPLE_TOKENS = 16
JUDGE_TOKENS = 96


def candidates_to_judge(state: SolveState, ctx: SolveContext) -> list[Candidate]:
    """Which candidates get an LLM judge now. Identical normalised answers are judged once (a verdict on
    one counts for every candidate with that answer). ``judge=True`` forces judging; otherwise
    ``best_of_n`` and ``adaptive`` judge (the two most voted unjudged answers) only when it pays
    (``judge_pays``); ``revise`` judges its fresh answer (the critique needs a verdict); ``single`` and
    ``self_consistency`` judge only when asked (weighted votes judge every fresh candidate)."""
    cfg = ctx.strategy
    if ctx.can_check or cfg.judge is False:
        return []
    if judge_contradicted(state) and not cfg.judge:
        return []  # it accepted different answers: more of its verdicts would tell nothing
    judged = judge_verdicts(state, with_no_verdict=True)  # a judge that gave no verdict is not asked again
    latest_wave = max((c["wave"] for c in usable(state)), default=0)
    fresh = [c for c in usable(state) if c["wave"] == latest_wave and c["id"] not in judged]
    if cfg.name == "self_consistency" and cfg.weighted_vote:
        return fresh  # every vote gets its own weight
    keyed = with_answer_keys(usable(state))
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
    keyed = with_answer_keys(usable(state))
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
    per_sample = max(mean_tokens(state), MIN_SAMPLE_TOKENS)
    if ctx.budget.remaining_tokens() < 2 * (judge_cost + per_sample):
        return False, "small budget: agreement among more samples beats a judge per token"
    share = vote_counts(answers)[majority] / len(answers) if majority is not None else 0.0
    _, if_agrees = majority_stability(answers + [majority])
    _, if_not = majority_stability(answers + ["\x00other"])
    gain_sample = max(share * if_agrees * agree + (1 - share) * if_not * agree - current, 0.0)
    pays = gain_judge / judge_cost > gain_sample / per_sample
    return pays, (f"judge +{gain_judge:.2f} confidence for {judge_cost:.0f} tokens vs a sample "
                  f"+{gain_sample:.3f} for {per_sample:.0f}")


def candidate_confidence(state: SolveState, ctx: SolveContext, candidate: Candidate) -> tuple[float, str]:
    """How likely this candidate is right, and which verifier says so, each discounted by its precision."""
    env = env_verdicts(state).get(candidate["id"])
    if env is not None:
        return (ctx.stats.precision(ctx.namespace, ctx.checker_name) if env["passed"] else 0.0), ctx.checker_name
    keyed = with_answer_keys(usable(state))
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


def decide(state: SolveState, ctx: SolveContext) -> Decision:
    """What to do after a wave, and why (recorded in the trace)."""
    cfg = ctx.strategy
    candidates = state.get("candidates", [])
    ok = usable(state)
    env = env_verdicts(state)
    passed = [c for c in ok if env.get(c["id"], {}).get("passed")]
    if passed:
        return {"action": "select", "reason": f"verified by {ctx.checker_name}", "samples": len(candidates)}
    if cfg.name == "adaptive" and ctx.can_check and ctx.stopping:  # the give-up rule
        learned = learned_stop(ok, candidates, ctx)
        if len(candidates) >= cfg.n:  # the strategy's cap; the rule's give-up is told when it gave up too
            gave_up = learned["action"] == "select" and "give up" in learned["reason"]
            reason = f"adaptive: {cfg.n} samples drawn" + (f"; {learned['reason']}" if gave_up else "")
            return {**learned, "action": "select", "reason": reason}
        if learned["action"] == "select" or not budget_spent(state, ctx):
            return learned
    if budget_spent(state, ctx):
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
    if ctx.can_check:  # without a give-up rule (give_up=False, a subtask the allocation did not price)
        return {"action": "sample", "reason": "no candidate passed the check yet", "samples": len(candidates)}
    if best_conf >= cfg.stop_confidence:
        return {"action": "select", "reason": f"adaptive: confidence {best_conf:.2f} >= {cfg.stop_confidence}",
                "samples": len(candidates)}
    return {"action": "sample", "samples": len(candidates),
            "reason": f"adaptive: best confidence {best_conf:.2f} < {cfg.stop_confidence}"}


def learned_stop(ok: list[Candidate], candidates: list[Candidate], ctx: SolveContext) -> Decision:
    """Adaptive with a checker and a give-up rule: the next wave only when its chance of a verified answer
    (the posterior predictive after this question's failures so far, and how often they repeated a rejected
    answer) times what a verified answer is worth exceeds what the wave costs (this question's own tokens per
    sample once it has drawn one); the numbers go into the decision record."""
    sampled = [c for c in ok if c["kind"] != "cached"]
    per_sample = sum(c.get("tokens", 0) for c in sampled) / len(sampled) if sampled else None
    keys = [c["answer_key"] for c in with_answer_keys(sorted(sampled, key=lambda c: (c["wave"], c["index"])))]
    repeats = repeat_share(sample_pattern(keys, [False] * len(keys)).split(","))
    wave = decide_wave(ctx.stopping, len(sampled), tokens_per_sample=per_sample or None, repeats=repeats)
    reason = wave.reason(len(sampled)) + (f" ({repeats:.0%} of them repeated a rejected answer)" if repeats else "")
    return {"action": "sample" if wave.go else "select", "samples": len(candidates), "reason": f"adaptive: {reason}",
            **wave.record(), "repeats": round(repeats, 3)}


def first_wave_decision(ctx: SolveContext) -> Decision | None:
    """The give-up rule before any sample: a decision to give up when not even the first wave is worth its
    tokens (the kind's records make a verified answer that unlikely at this value), else None."""
    cfg = ctx.strategy
    if cfg.name != "adaptive" or not ctx.can_check or not ctx.stopping:
        return None
    wave = decide_wave(ctx.stopping, 0, wave=cfg.first_wave or cfg.wave_size)
    if wave.go:
        return None
    return {"action": "select", "samples": 0, "reason": f"adaptive: {wave.reason(0)}", **wave.record(),
            "repeats": 0.0}


def budget_spent(state: SolveState, ctx: SolveContext) -> bool:
    if ctx.budget.exhausted():
        return True
    if any(c["status"] == "budget" for c in state.get("candidates", [])):
        return True
    return ctx.budget.remaining_tokens() < max(mean_tokens(state) * 0.5, MIN_SAMPLE_TOKENS * 2)


def best_failed(state: SolveState, ctx: SolveContext) -> Candidate | None:
    ok = usable(state)
    if not ok:
        return None
    return max(ok, key=lambda c: (candidate_confidence(state, ctx, c)[0], c["wave"]))
