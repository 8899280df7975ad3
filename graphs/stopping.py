"""Give-up and continue rules: when one more wave of samples pays, and when it does not.

What the records say about a kind of question (its hierarchical success model, with its uncertainty, and what
agreement on a rejected answer adds) is ``success_model``'s; this module turns it into decisions.

**Single questions** (``give_up_rule``): a verified answer is worth ``value`` tokens (the user's setting). The
next wave is drawn while P(it is verified | this question's evidence) x value exceeds its tokens; otherwise the
run gives up and says so with the numbers. The predictive never rises with more failures, so this one-step rule
is the Bayes-optimal stopping rule (a monotone stopping problem: once one more wave does not pay, no later one
will).

**Multi-stage tasks** (``plan_task``): a token has a price ``lam``, the success it could buy elsewhere (another
task of the stream, or a later subtask). ``plan_task`` is the Bayes-optimal policy for the remaining stages of
one task at that price (a backward dynamic programme over stages and failures): sample the next wave while its
expected gain (success of this stage times the value of the stages after it, net of their cost) per token is
above ``lam``; otherwise give up, and the task fails. With a checker the posterior depends only on the number of
failures, so the policy of a stage is a threshold: give up after ``give_up_after`` samples. ``price_for_rate``
finds the price at which a stream of tasks like the recorded ones spends a given number of tokens per task on
average. Allocation (``allocation.Learned``) and stopping (``decide``) both read these numbers, so compute flows
from hopeless subtasks to the ones where it pays. A single question's rule is the same programme at price
1 / value with nothing after it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from .success_model import (
    MIN_RECORDS,
    KindPosterior,
    KindPrior,
    SuccessPrior,
    fit_agreement,
    fit_posterior,
    prior_from_spec,
    priors_from_records,
    record_tokens,
    with_agreement,
)

__all__ = ["MAX_SAMPLES", "MIN_RECORDS", "KindPosterior", "KindPrior", "KnownStage", "NextWave", "StagePlan",
           "decide_wave", "fit_posterior", "give_up_rule", "known_task", "next_wave", "oracle", "oracle_plan",
           "plan_task", "price_for_rate", "priors_from_records", "spec", "stage_tokens", "value_spec"]

MAX_SAMPLES = 16  # most samples one stage may draw


@dataclass
class StagePlan:
    """The policy for one stage at a price: its give-up point and what it is expected to bring."""

    prior: SuccessPrior
    give_up_after: int  # samples (the stage stops, failed, once it has drawn this many)
    value: float  # expected end-to-end success from this stage on, net of the price of the tokens
    success: float  # expected end-to-end success from this stage on (starting fresh)
    tokens: float  # expected tokens from this stage on
    model: str | None = None
    values: list[float] = field(default_factory=list, repr=False)  # value after f failures, f = 0..cap


@dataclass
class NextWave:
    """Why the next wave is drawn or not, in tokens: its chance of a verified answer, what that is worth,
    and what the wave costs."""

    go: bool
    success: float  # P(the wave is verified | this question's evidence): the posterior predictive
    later: float  # what a verified answer here brings (1 for a single question; the later stages' net value)
    tokens: float  # what the wave costs
    price: float  # the price of a token: 1 / the value of a solve, in tokens
    capped: bool = False  # the rule's horizon (its most samples) is reached: no wave is left to weigh

    @property
    def value(self) -> float:
        """What a verified answer here is worth, in tokens."""
        return self.later / self.price if self.price > 0 else math.inf

    @property
    def worth(self) -> float:
        """The wave's expected worth in tokens: P(verified) x value."""
        return self.success * self.value

    @property
    def gain_per_token(self) -> float:
        return self.success * self.later / self.tokens if self.tokens else 0.0

    def reason(self, failures: int) -> str:
        if self.capped:
            return f"stop: {failures} failed sample(s), the most this rule draws"
        verdict, sign = ("continue", ">") if self.go else ("give up", "<=")
        return (f"{verdict}: after {failures} failed sample(s), P(next wave verified) {self.success:.3f} x value "
                f"{self.value:.0f} tokens = {self.worth:.0f} {sign} its cost {self.tokens:.0f} tokens")

    def record(self) -> dict:
        """The numbers a decision record keeps."""
        return {"p_next_wave": round(self.success, 4), "value": round(self.value, 1),
                "cost": round(self.tokens, 1), "price": self.price, "gain_per_token": self.gain_per_token}


def plan_task(stages: Sequence[Sequence[tuple[str | None, SuccessPrior]]], price: float, *, wave: int = 1,
              max_samples: int = MAX_SAMPLES, failures: int = 0) -> list[StagePlan]:
    """Bayes-optimal give-up points for the remaining stages of a task (in order), at ``price`` per token.

    Each stage is a list of (model, prior) options; the best model per stage is chosen backwards.
    ``failures`` are the failures already seen on the first stage. The task succeeds only if every
    stage does; giving up on a stage fails the task (value 0)."""
    plans: list[StagePlan] = []
    next_value, next_success, next_tokens = 1.0, 1.0, 0.0
    for options in reversed(stages):
        best: StagePlan | None = None
        for model, prior in options:
            plan = _stage(prior, price, next_value, next_success, next_tokens, wave, max_samples)
            plan.model = model
            if best is None or plan.value > best.value:
                best = plan
        assert best is not None, "a stage needs at least one (model, prior) option"
        plans.append(best)
        next_value, next_success, next_tokens = best.value, best.success, best.tokens
    plans.reverse()
    if failures and plans:
        first = plans[0]
        rest = plans[1] if len(plans) > 1 else None
        redone = _stage(first.prior, price, rest.value if rest else 1.0, rest.success if rest else 1.0,
                        rest.tokens if rest else 0.0, wave, max_samples, start=failures)
        redone.model = first.model
        plans[0] = redone
    return plans


def _stage(prior: SuccessPrior, price: float, next_value: float, next_success: float, next_tokens: float,
           wave: int, cap: int, start: int = 0, tokens_per_sample: float | None = None) -> StagePlan:
    size = cap + 1
    value, success, tokens = [0.0] * (size + wave), [0.0] * (size + wave), [0.0] * (size + wave)
    go = [False] * size
    per_sample = prior.tokens if tokens_per_sample is None else tokens_per_sample
    for f in range(cap - 1, -1, -1):
        w = min(wave, cap - f)
        p = prior.wave_success(f, w)
        cost = w * per_sample
        cont = -price * cost + p * next_value + (1 - p) * value[f + w]
        if cont > 0 and next_value > 0:
            go[f] = True
            value[f] = cont
            success[f] = p * next_success + (1 - p) * success[f + w]
            tokens[f] = cost + p * next_tokens + (1 - p) * tokens[f + w]
    give_up = start
    while give_up < cap and go[give_up]:
        give_up += min(wave, cap - give_up)
    return StagePlan(prior, give_up, value[start], success[start], tokens[start], values=value[:size])


def next_wave(plans: Sequence[StagePlan], price: float, failures: int, wave: int) -> NextWave:
    """The decision for the first stage's next wave after ``failures`` failures (and its reasons)."""
    return _decision(plans[0], plans[1].value if len(plans) > 1 else 1.0, price, failures, wave)


def _decision(stage: StagePlan, later: float, price: float, failures: int, wave: int,
              tokens_per_sample: float | None = None) -> NextWave:
    cap = len(stage.values) - 1
    w = max(1, min(wave, cap - failures))
    p = stage.prior.wave_success(failures, w)
    after = stage.values[failures + w] if failures + w <= cap else 0.0
    gain = p * later + (1 - p) * after  # with what continuing after this wave keeps (0 once it does not pay)
    cost = w * (stage.prior.tokens if tokens_per_sample is None else tokens_per_sample)
    return NextWave(failures < cap and later > 0 and gain > price * cost, p, later, cost, price, failures >= cap)


def spec(prior: SuccessPrior, price: float, *, later_value: float = 1.0, wave: int = 1,
         max_samples: int = MAX_SAMPLES) -> dict:
    """What a solve graph needs to re-decide each wave (JSON-able: it travels in the allocation record)."""
    return {**prior.as_spec(), "later_value": later_value, "price": price, "wave": wave, "max_samples": max_samples}


def value_spec(prior: SuccessPrior, solve_value: float, *, wave: int = 1, max_samples: int = MAX_SAMPLES) -> dict:
    """The give-up rule of a single question whose verified answer is worth ``solve_value`` tokens."""
    return spec(prior, 1.0 / max(float(solve_value), 1e-9), wave=wave, max_samples=max_samples)


def decide_wave(stop: dict, failures: int, *, tokens_per_sample: float | None = None,
                repeats: float = 0.0, wave: int | None = None) -> NextWave:
    """The give-up rule described by ``spec(...)`` after ``failures`` failed samples, a share ``repeats`` of which
    repeated an earlier rejected answer; ``tokens_per_sample``: what this question's samples have cost so far
    (default: the records' figure); ``wave``: the next wave's size (default: the spec's)."""
    prior = _cached_prior(stop)
    later, price = float(stop.get("later_value", 1.0)), float(stop["price"])
    wave, cap = int(wave or stop.get("wave", 1)), int(stop.get("max_samples", MAX_SAMPLES))
    stage = _stage(prior, price, later, 1.0, 0.0, wave, cap, tokens_per_sample=tokens_per_sample)
    decision = _decision(stage, later, price, min(failures, cap), wave, tokens_per_sample)
    if repeats > 0 and stop.get("agreement") and failures < cap:
        w = max(1, min(wave, cap - failures))
        p = with_agreement(prior, stop["agreement"], failures, repeats, w)
        # myopic here: the monotone one-step rule is the Bayes rule
        decision = NextWave(later > 0 and p * later > price * decision.tokens, p, later, decision.tokens, price)
    return decision


_PRIORS: dict[tuple, KindPosterior] = {}


def _cached_prior(stop: dict) -> KindPosterior:
    """``prior_from_spec``, kept for the specs seen lately (a run re-decides every wave from the same spec)."""
    components = stop.get("components") or [[1.0, stop["alpha"], stop["beta"]]]
    key = (tuple(tuple(c) for c in components), float(stop["tokens"]))
    prior = _PRIORS.get(key)
    if prior is None:
        if len(_PRIORS) > 256:
            _PRIORS.clear()
        prior = _PRIORS[key] = prior_from_spec(stop)
    return prior


TaskMix = Sequence[tuple[Sequence[Sequence[tuple[str | None, SuccessPrior]]], float]]


def price_for_rate(mix: TaskMix, rate: float, *, wave: int = 1, max_samples: int = MAX_SAMPLES,
                   floor: float = 1e-7) -> float:
    """The price per token at which the Bayes policy spends ``rate`` tokens per task on average over
    ``mix`` ((stages, weight) pairs): what a token could buy elsewhere in such a stream. ``floor`` when the
    rate is never binding (a token is then worth almost nothing: hopeless work still stops)."""
    total = sum(weight for _, weight in mix) or 1.0

    def spend(price: float) -> float:
        out = 0.0
        for stages, weight in mix:
            plans = plan_task(stages, price, wave=wave, max_samples=max_samples)
            out += weight * (plans[0].tokens if plans[0].value > 0 else 0.0)
        return out / total

    if not mix or spend(floor) <= rate:
        return floor
    low, high = floor, 1.0 / min(prior.tokens for stages, _ in mix for options in stages for _, prior in options)
    for _ in range(24):  # a ratio of 1e5 between the bounds: 24 halvings in log space pin it to 0.1%
        mid = math.sqrt(low * high)
        if spend(mid) > rate:
            low = mid
        else:
            high = mid
    return high


# --- the oracle: every task's success probability known ------------------------------------------------
@dataclass(frozen=True)
class KnownStage:
    p: float  # per-sample success probability of this stage of this task (latent)
    tokens: float  # tokens per sample


def known_task(stages: Sequence[KnownStage], max_samples: int) -> tuple[float, float]:
    """(success, expected tokens) of attempting a task with known probabilities to the end: each stage
    samples until it succeeds or has drawn ``max_samples``. With known probabilities nothing is learned by
    sampling, so the optimal policy per task is all or nothing (the value is linear in the stage's coverage)."""
    success, tokens = 1.0, 0.0
    for stage in stages:
        if stage.p <= 0:
            return 0.0, tokens + stage.tokens * max_samples * success
        coverage = 1 - (1 - stage.p) ** max_samples
        tokens += success * stage.tokens * coverage / stage.p
        success *= coverage
    return success, tokens


def oracle_plan(tasks: Sequence[Sequence[KnownStage]], rate: float, *, max_samples: int = MAX_SAMPLES
                ) -> list[float]:
    """Per task, the share of it the oracle attempts (1, 0, or a fraction for the last one it can afford)."""
    values = [known_task(stages, max_samples) for stages in tasks]
    order = sorted((i for i, v in enumerate(values) if v[0] > 0), key=lambda i: -values[i][0] / max(values[i][1], 1e-9))
    budget, spent, shares = rate * len(tasks), 0.0, [0.0] * len(tasks)
    for i in order:
        tokens = values[i][1]
        shares[i] = 1.0 if spent + tokens <= budget else (budget - spent) / tokens
        spent += tokens * shares[i]
        if shares[i] < 1.0:
            break
    return shares


def oracle(tasks: Sequence[Sequence[KnownStage]], rate: float, *, max_samples: int = MAX_SAMPLES
           ) -> tuple[float, float]:
    """(expected success rate, expected tokens per task) of the best policy that knows every task's success
    probabilities and may spend ``rate`` tokens per task on average over the stream (optimal allocation
    across tasks and stages, and optimal stopping): attempt tasks in order of success per token until the
    budget is spent, the last one fractionally (the Lagrangian relaxation's optimum)."""
    shares = oracle_plan(tasks, rate, max_samples=max_samples)
    values = [known_task(stages, max_samples) for stages in tasks]
    n = max(len(tasks), 1)
    return (sum(s * v[0] for s, v in zip(shares, values)) / n, sum(s * v[1] for s, v in zip(shares, values)) / n)


def stage_tokens(stages: Sequence[KnownStage], max_samples: int) -> list[float]:
    """Expected tokens per stage when a task with known probabilities is attempted to the end."""
    reached, out = 1.0, []
    for stage in stages:
        coverage = 1 - (1 - stage.p) ** max_samples
        out.append(reached * stage.tokens * (coverage / stage.p if stage.p > 0 else max_samples))
        reached *= coverage
    return out


def give_up_rule(records: Sequence[dict], solve_value: float, *, wave: int = 1,
                 max_samples: int = MAX_SAMPLES, tokens: float | None = None) -> dict:
    """The give-up rule (``value_spec``) of a single question, from the records of earlier questions of its
    kind (same namespace, model and environment: ``samples`` drawn, ``successes``, ``spent`` tokens, the sample
    ``pattern``). Any number of records, none included: the posterior carries how little a few of them say.
    ``tokens``: the cost of a sample when no record says it."""
    observations = [(int(r["samples"]), int(r.get("successes", bool(r.get("success"))))) for r in records
                    if isinstance(r.get("samples"), int) and r["samples"] > 0]
    prior = fit_posterior(observations, record_tokens(records) or float(tokens or 1.0))
    rule = value_spec(prior, solve_value, wave=wave, max_samples=max_samples)
    rule["agreement"] = [list(point) for point in fit_agreement(records, prior)]
    return rule
