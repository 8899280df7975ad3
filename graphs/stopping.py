"""Learned give-up and continue rules: when one more wave of samples pays, and when it does not.

Per subtask kind (and model) the per-task success probability of one sample is taken to be
Beta(alpha, beta) distributed. The prior is fitted to the memory's allocation records (samples drawn,
success) by maximum marginal likelihood of the beta-geometric model: a record that succeeded at its
n-th sample has probability B(a + 1, b + n - 1) / B(a, b), one that failed after n samples
B(a, b + n) / B(a, b) (so give-ups are censored observations, not misread as hopeless).

During a run the failures seen so far update it: after f failures the posterior is Beta(a, b + f) and
the next wave of w samples succeeds with probability 1 - B(a, b + f + w) / B(a, b + f).

A token has a price ``lam``: the success it could buy elsewhere (another task of the stream, or a later
subtask). ``plan_task`` is the Bayes-optimal policy for the remaining stages of one task at that price
(a backward dynamic programme over stages and failures): sample the next wave while its expected gain
(success of this stage times the value of the stages after it, net of their cost) per token is above
``lam``; otherwise give up, and the task fails. With a checker the posterior depends only on the number
of failures, so the policy of a stage is a threshold: give up after ``give_up_after`` samples.
``price_for_rate`` finds the price at which a stream of tasks like the recorded ones spends a given
number of tokens per task on average. Allocation (``allocation.Learned``) and stopping (``solve.decide``)
both read these numbers, so compute flows from hopeless subtasks to the ones where it pays.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MIN_RECORDS = 6  # sampled records of a kind before its prior is trusted
MAX_SAMPLES = 16  # most samples one stage may draw
_MEANS = [0.002, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6,
          0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.96, 0.98, 0.995]
_STRENGTHS = [0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 35.0, 60.0, 100.0, 200.0]


@dataclass(frozen=True)
class KindPrior:
    """Beta(alpha, beta) over a kind's per-task, per-sample success probability, and its tokens per sample."""

    alpha: float
    beta: float
    tokens: float
    records: int = 0

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def wave_success(self, failures: int, wave: int) -> float:
        """P(at least one of the next ``wave`` samples succeeds | ``failures`` failures so far)."""
        miss = 1.0
        for j in range(wave):
            b = self.beta + failures + j
            miss *= b / (self.alpha + b)
        return 1.0 - miss

    def coverage(self, samples: int) -> float:
        """P(success within ``samples`` samples) for a fresh task of this kind."""
        return self.wave_success(0, samples)

    def describe(self) -> str:
        return (f"Beta({self.alpha:.2f}, {self.beta:.2f}) mean {self.mean:.3f}, {self.tokens:.0f} tokens/sample, "
                f"{self.records} record(s)")


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def fit_prior(observations: Iterable[tuple[int, bool]], tokens: float) -> KindPrior:
    """Maximum-marginal-likelihood Beta prior from (samples drawn, succeeded) observations.

    A weak hyperprior (one pseudo success at the first sample and one failure after one sample, at
    strength 2) keeps a handful of records from producing a certain-success or certain-failure prior."""
    counts = Counter((int(n), bool(ok)) for n, ok in observations if int(n) > 0)
    counts[(1, True)] += 0.5
    counts[(1, False)] += 0.5
    best, best_ll = (1.0, 1.0), -math.inf
    for mean in _MEANS:
        for strength in _STRENGTHS:
            a, b = mean * strength, (1 - mean) * strength
            base = _log_beta(a, b)
            ll = 0.0
            for (n, ok), count in counts.items():
                ll += count * ((_log_beta(a + 1, b + n - 1) if ok else _log_beta(a, b + n)) - base)
            if ll > best_ll:
                best, best_ll = (a, b), ll
    records = sum(c for (n, _), c in counts.items()) - 1
    return KindPrior(best[0], best[1], max(float(tokens), 1.0), round(records))


def _tokens(value) -> float:
    if isinstance(value, dict):
        return float(value.get("tokens") or value.get("max_tokens") or 0)
    return float(value or 0)


def priors_from_records(records: Sequence[dict], *, min_records: int = MIN_RECORDS
                        ) -> dict[tuple[str, str | None], KindPrior]:
    """Per (kind, model) and per (kind, None) the fitted prior, from records that say how many samples
    were drawn (``samples``); kinds with fewer than ``min_records`` such records are left out."""
    grouped: dict[tuple[str, str | None], list[tuple[int, bool, float]]] = {}
    for record in records:
        kind, samples = record.get("subtask_kind"), record.get("samples")
        if not kind or not isinstance(samples, int) or samples <= 0:
            continue
        entry = (samples, bool(record.get("success")), _tokens(record.get("spent")) / samples)
        grouped.setdefault((kind, record.get("model")), []).append(entry)
        if record.get("model") is not None:
            grouped.setdefault((kind, None), []).append(entry)
    priors = {}
    for key, entries in grouped.items():
        if len(entries) >= min_records:
            tokens = sum(t for _, _, t in entries) / len(entries)
            priors[key] = fit_prior([(n, ok) for n, ok, _ in entries], tokens)
    return priors


@dataclass
class StagePlan:
    """The policy for one stage at a price: its give-up point and what it is expected to bring."""

    prior: KindPrior
    give_up_after: int  # samples (the stage stops, failed, once it has drawn this many)
    value: float  # expected end-to-end success from this stage on, net of the price of the tokens
    success: float  # expected end-to-end success from this stage on (starting fresh)
    tokens: float  # expected tokens from this stage on
    model: str | None = None
    values: list[float] = field(default_factory=list, repr=False)  # value after f failures, f = 0..cap


@dataclass
class NextWave:
    """Why the next wave is drawn or not: its chance, its expected gain per token, and the price."""

    go: bool
    success: float  # P(the wave succeeds | failures so far)
    gain: float  # expected end-to-end success it buys (net of later stages' cost), before its own cost
    tokens: float
    price: float

    @property
    def gain_per_token(self) -> float:
        return self.gain / self.tokens if self.tokens else 0.0

    def reason(self, failures: int) -> str:
        verdict = "continue" if self.go else "give up"
        sign = ">" if self.go else "<="
        return (f"{verdict}: after {failures} failure(s), next wave P(success) {self.success:.3f}, expected gain "
                f"{self.gain:.4f} for {self.tokens:.0f} tokens = {self.gain_per_token:.2e}/token {sign} "
                f"price {self.price:.2e}/token")


def plan_task(stages: Sequence[Sequence[tuple[str | None, KindPrior]]], price: float, *, wave: int = 1,
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


def _stage(prior: KindPrior, price: float, next_value: float, next_success: float, next_tokens: float,
           wave: int, cap: int, start: int = 0) -> StagePlan:
    size = cap + 1
    value, success, tokens = [0.0] * (size + wave), [0.0] * (size + wave), [0.0] * (size + wave)
    go = [False] * size
    for f in range(cap - 1, -1, -1):
        w = min(wave, cap - f)
        p = prior.wave_success(f, w)
        cost = w * prior.tokens
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


def _decision(stage: StagePlan, later: float, price: float, failures: int, wave: int) -> NextWave:
    cap = len(stage.values) - 1
    w = max(1, min(wave, cap - failures))
    p = stage.prior.wave_success(failures, w)
    after = stage.values[failures + w] if failures + w <= cap else 0.0
    gain = p * later + (1 - p) * after
    cost = w * stage.prior.tokens
    return NextWave(failures < cap and later > 0 and gain > price * cost, p, gain, cost, price)


def spec(prior: KindPrior, price: float, *, later_value: float = 1.0, wave: int = 1,
         max_samples: int = MAX_SAMPLES) -> dict:
    """What a solve graph needs to re-decide each wave (JSON-able: it travels in the allocation record)."""
    return {"alpha": prior.alpha, "beta": prior.beta, "tokens": prior.tokens, "later_value": later_value,
            "price": price, "wave": wave, "max_samples": max_samples}


def decide_wave(stop: dict, failures: int) -> NextWave:
    """The give-up rule for a subtask described by ``spec(...)``, after ``failures`` failed samples."""
    prior = KindPrior(float(stop["alpha"]), float(stop["beta"]), float(stop["tokens"]))
    later, price = float(stop.get("later_value", 1.0)), float(stop["price"])
    wave, cap = int(stop.get("wave", 1)), int(stop.get("max_samples", MAX_SAMPLES))
    stage = _stage(prior, price, later, 1.0, 0.0, wave, cap)
    return _decision(stage, later, price, min(failures, cap), wave)


TaskMix = Sequence[tuple[Sequence[Sequence[tuple[str | None, KindPrior]]], float]]


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


def stopping_for(records: Sequence[dict], kind: str, rate: float, *, model: str | None = None, wave: int = 1,
                 max_samples: int = MAX_SAMPLES, min_records: int = MIN_RECORDS,
                 rate_samples: float | None = None) -> dict | None:
    """The give-up rule (``spec``) for a single question of ``kind`` at ``rate`` tokens per question, from
    allocation records (for ``SolveContext.stopping``); None while the kind has too few sampled records.
    The price of a token comes from the recorded mix of kinds (weighted by their record counts).
    ``rate_samples`` caps the rate at that many samples' worth of the kind's recorded tokens per sample
    (when the run has no token cap, or a looser one, the rate is still stated in samples)."""
    priors = priors_from_records(records, min_records=min_records)
    prior = priors.get((kind, model)) or priors.get((kind, None))
    if prior is None:
        return None
    if rate_samples is not None:
        rate = min(rate, rate_samples * prior.tokens)
    mix = [([[(None, p)]], float(max(p.records, 1))) for (_, m), p in priors.items() if m is None]
    price = price_for_rate(mix, rate, wave=wave, max_samples=max_samples)
    return spec(prior, price, wave=wave, max_samples=max_samples)
