"""Budget allocation policies: how a multi-stage task's token budget is split across its subtasks.

- ``uniform``: equal shares.
- ``difficulty``: shares proportional to the planner's difficulty estimates (after Plan-and-Budget / SCALE).
- ``learned``: from the memory's allocation records of earlier runs. When the records say how many samples
  each subtask drew, a Beta prior of per-task success per kind (and model) and the Bayes give-up rule of
  ``stopping``: each subtask gets the tokens of the samples it would draw before giving up, at the price a
  token has in the stream (what it could buy elsewhere); a task whose best plan is not worth its tokens
  gets nothing. Otherwise a success-vs-budget curve per subtask kind (and model); the split greedily
  maximises the expected end-to-end success (the product of the subtasks' success probabilities) within
  the total. Given several models it picks the model per subtask (after AgentTTS). Kinds with few
  records are explored (difficulty share, jittered budgets).

Allocations are caps, recomputed over the remaining subtasks every time some are dispatched, so
budget a finished subtask did not spend flows on to the rest. Every decision carries its reason.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from seasoned.errors import AllocationError

from . import stopping

DIFFICULTY_FLOOR = 0.25  # an "easy" subtask still gets a share


@dataclass
class SubtaskNeed:
    """What an allocator knows about a subtask."""

    id: str
    kind: str
    difficulty: float = 0.5


@dataclass
class Allocation:
    subtask: str
    tokens: int
    reason: str
    model: str | None = None
    expected_success: float | None = None
    samples: int | None = None  # give up after this many samples (learned give-up rule)
    stopping: dict | None = None  # what the solve graph needs to re-decide each wave (see ``stopping``)

    def to_dict(self) -> dict:
        out = {"subtask": self.subtask, "tokens": self.tokens, "model": self.model, "reason": self.reason,
               "expected_success": None if self.expected_success is None else round(self.expected_success, 4)}
        if self.samples is not None:
            out["samples"] = self.samples
        if self.stopping is not None:
            out["stopping"] = dict(self.stopping)
        return out


class AllocationPolicy(Protocol):
    name: str

    def allocate(self, needs: Sequence[SubtaskNeed], total_tokens: int,
                 models: Sequence[str] | None = None) -> dict[str, Allocation]: ...


# A policy with ``uses_task_budget = True`` also takes ``task_budget=`` (tokens per task the stream can
# afford), which prices its tokens.


def _proportional(needs: Sequence[SubtaskNeed], total: int, weights: Sequence[float]) -> list[int]:
    scale = sum(weights) or 1.0
    shares = [int(total * w / scale) for w in weights]
    for i in range(total - sum(shares)):  # hand out the rounding remainder
        shares[i % len(shares)] += 1
    return shares


class Uniform:
    name = "uniform"

    def allocate(self, needs, total_tokens, models=None):
        shares = _proportional(needs, total_tokens, [1.0] * len(needs))
        return {n.id: Allocation(n.id, s, f"uniform: 1/{len(needs)} of {total_tokens}",
                                 models[0] if models else None) for n, s in zip(needs, shares)}


class DifficultyWeighted:
    name = "difficulty"

    def allocate(self, needs, total_tokens, models=None):
        weights = [DIFFICULTY_FLOOR + n.difficulty for n in needs]
        shares = _proportional(needs, total_tokens, weights)
        return {n.id: Allocation(n.id, s, f"difficulty {n.difficulty:.2f}: weight {w:.2f}/{sum(weights):.2f}",
                                 models[0] if models else None) for n, s, w in zip(needs, shares, weights)}


@dataclass
class SuccessCurve:
    """P(success | budget) for one subtask kind (and model), from records of (budget, spent, success).

    A record that succeeded having spent ``s`` would have succeeded with any budget >= s; one that
    failed with budget ``B`` would have failed with any budget <= B, and is taken as evidence of failure
    up to 2B as well (doubling a budget rarely rescues what failed: without this, budgets beyond those
    tried would look as promising as the prior). The estimate is Laplace-smoothed.
    """

    records: list[tuple[float, float, bool]] = field(default_factory=list)  # (budget, spent, success)

    def __len__(self) -> int:
        return len(self.records)

    def p(self, budget: float) -> float:
        wins = losses = 0
        for given, spent, success in self.records:
            if success and spent <= budget:
                wins += 1
            elif (success and spent > budget) or (not success and 2 * given >= budget):
                losses += 1
        return (wins + 1) / (wins + losses + 2)


def _tokens(value) -> float:
    if isinstance(value, dict):
        return float(value.get("tokens") or value.get("max_tokens") or 0)
    return float(value or 0)


class Learned:
    """Greedy marginal allocation on learned success curves, exploring kinds with thin records."""

    name = "learned"

    uses_task_budget = True
    gives_up_after_failure = True  # a chained subtask whose predecessor failed its check gets nothing

    def __init__(self, records: Callable[[], list[dict]], *, min_records: int = 6, step_fraction: float = 0.05,
                 min_share: float = 0.15, explore: float = 0.25, hopeless: float = 0.1, seed: int = 0,
                 rate: float | None = None, max_samples: int = stopping.MAX_SAMPLES, wave: int = 1,
                 slack: float = 1.25):
        self.records = records
        self.rate = rate  # tokens per task the stream can afford (default: the task's own budget)
        self.max_samples = max_samples
        self.wave = wave
        self.slack = slack  # tokens per sample vary: a cap this much above the expected samples' tokens
        self._price_cache: dict[tuple, float] = {}
        self.min_records = min_records
        self.step_fraction = step_fraction
        self.min_share = min_share
        self.explore = explore
        self.hopeless = hopeless
        self.rng = random.Random(seed)

    def curves(self, records: list[dict] | None = None) -> dict[tuple[str, str | None], SuccessCurve]:
        curves: dict[tuple[str, str | None], SuccessCurve] = {}
        for record in self.records() if records is None else records:
            kind = record.get("subtask_kind")
            if not kind:
                continue
            entry = (_tokens(record.get("budget")), _tokens(record.get("spent")), bool(record.get("success")))
            curves.setdefault((kind, record.get("model")), SuccessCurve()).records.append(entry)
            curves.setdefault((kind, None), SuccessCurve()).records.append(entry)
        return curves

    def allocate(self, needs, total_tokens, models=None, *, task_budget: float | None = None):
        records = self.records()
        priors = self._priors(records)
        if needs and all((n.kind, None) in priors for n in needs):
            return self._bayes(needs, total_tokens, models, priors, records, task_budget)
        curves = self.curves(records)
        known = [n for n in needs if len(curves.get((n.kind, None), ())) >= self.min_records]
        thin = [n for n in needs if n not in known]
        allocations: dict[str, Allocation] = {}
        # Thin kinds: explore with jittered difficulty shares (so records cover several budgets), scaled
        # back so that together they take exactly their unjittered part of the total.
        if thin:
            weights = {n.id: DIFFICULTY_FLOOR + n.difficulty for n in needs}
            part = int(total_tokens * sum(weights[n.id] for n in thin) / sum(weights.values()))
            jitters = {n.id: 1 + self.rng.uniform(-self.explore, self.explore) for n in thin}
            shares = _proportional(thin, part, [weights[n.id] * jitters[n.id] for n in thin])
            for need, tokens in zip(thin, shares):
                count = len(curves.get((need.kind, None), ()))
                allocations[need.id] = Allocation(
                    need.id, tokens, f"exploring: {count} record(s) for kind {need.kind!r} (< {self.min_records}); "
                                     f"difficulty share x{jitters[need.id]:.2f}", models[0] if models else None)
        remaining = max(total_tokens - sum(a.tokens for a in allocations.values()), 0)
        if known:
            allocations.update(self._greedy(known, remaining, curves, models))
        return allocations

    # --- the Bayes path: priors, prices and give-up points (see ``stopping``) ---------------------------
    def _priors(self, records: list[dict]) -> dict:
        """Fitted priors, refitted only when the records change (new ones arrive newest first)."""
        head = records[0] if records else {}
        key = (len(records), head.get("id"), head.get("subtask_kind"), head.get("samples"), head.get("success"))
        if getattr(self, "_priors_key", None) != key:
            self._priors_key, self._priors_value = key, stopping.priors_from_records(records,
                                                                                     min_records=self.min_records)
        return self._priors_value

    def _options(self, kind: str, priors: dict, models: Sequence[str] | None) -> list[tuple[str | None, stopping.KindPrior]]:
        chosen = [(m, priors[(kind, m)]) for m in models or () if (kind, m) in priors]
        return chosen or [(models[0] if models else None, priors[(kind, None)])]

    def _mix(self, records: list[dict], priors: dict, models) -> list[tuple[list, float]]:
        """The stream's tasks as seen in the records (grouped by run), for pricing a token."""
        runs: dict[str, list[str]] = {}
        for index, record in enumerate(records):
            run = (record.get("run_ids") or [None])[0] or f"record-{index}"
            runs.setdefault(run, []).insert(0, record.get("subtask_kind"))  # records come newest first
        shapes: dict[tuple[str, ...], int] = {}
        for kinds in list(runs.values())[:500]:
            if kinds and all((k, None) in priors for k in kinds):
                shapes[tuple(kinds)] = shapes.get(tuple(kinds), 0) + 1
        return [([self._options(k, priors, models) for k in kinds], float(count)) for kinds, count in shapes.items()]

    def price(self, records: list[dict], priors: dict, models, rate: float, fallback: list) -> float:
        key = (len(records), round(math.log(max(rate, 1.0)) / math.log(1.02)), tuple(models or ()))
        if key not in self._price_cache:
            mix = self._mix(records, priors, models) or [(fallback, 1.0)]
            quantized = 1.02 ** key[1]  # prices are cached per 2% step of the rate
            self._price_cache[key] = stopping.price_for_rate(mix, quantized, wave=self.wave,
                                                             max_samples=self.max_samples)
        return self._price_cache[key]

    def _bayes(self, needs, total, models, priors, records, task_budget) -> dict[str, Allocation]:
        stages = [self._options(n.kind, priors, models) for n in needs]
        rate = float(self.rate or task_budget or total)
        price = self.price(records, priors, models, rate, stages)
        plans = stopping.plan_task(stages, price, wave=self.wave, max_samples=self.max_samples)
        if plans[0].value <= 0:
            first = stopping.next_wave(plans, price, 0, self.wave)
            why = (f"learned give-up: kind {needs[0].kind!r}, {first.reason(0)} (the stream's price at {rate:.0f} "
                   "tokens/task): not worth sampling")
            return {n.id: Allocation(n.id, 0, why, p.model, 0.0, 0) for n, p in zip(needs, plans)}
        caps = [math.ceil(p.give_up_after * p.prior.tokens * self.slack) for p in plans]
        if sum(caps) > total:
            caps = _proportional(needs, total, caps)
        result = {}
        for index, (need, plan, cap) in enumerate(zip(needs, plans, caps)):
            later = plans[index + 1].value if index + 1 < len(plans) else 1.0
            reason = (f"learned: kind {need.kind!r} {plan.prior.describe()}; give up after {plan.give_up_after} "
                      f"sample(s); expected success from here {plan.success:.3f} for {plan.tokens:.0f} tokens; "
                      f"price {price:.2e}/token at {rate:.0f} tokens/task")
            spec = stopping.spec(plan.prior, price, later_value=later, wave=self.wave, max_samples=self.max_samples)
            result[need.id] = Allocation(need.id, cap, reason, plan.model, plan.success, plan.give_up_after, spec)
        return result

    def _greedy(self, needs, total, curves, models) -> dict[str, Allocation]:
        floor = int(total * self.min_share)
        budgets = {n.id: floor for n in needs}
        step = max(1, int(total * self.step_fraction))
        left = total - floor * len(needs)
        curve_of = {n.id: curves[(n.kind, None)] for n in needs}
        while left >= step:
            # Best gain per token over every jump that fits (not just one step): success curves are
            # step-like, so a subtask may gain nothing from one more step and a lot from five.
            best_rate, best_id, best_steps = -1.0, needs[0].id, 1
            for need in sorted(needs, key=lambda n: -n.difficulty):
                curve, base = curve_of[need.id], budgets[need.id]
                for steps in range(1, left // step + 1):
                    rate = (math.log(curve.p(base + steps * step)) - math.log(curve.p(base))) / steps
                    if rate > best_rate + 1e-12:
                        best_rate, best_id, best_steps = rate, need.id, steps
            if best_rate <= 0:  # more budget raises no subtask's success: hold the rest back
                break
            budgets[best_id] += best_steps * step
            left -= best_steps * step
        expected = math.prod(curve_of[n.id].p(budgets[n.id]) for n in needs)
        if expected < self.hopeless:
            # Even the best split is very unlikely to succeed end to end: one attempt's worth per subtask,
            # rather than good compute after bad.
            budgets = {n.id: min(budgets[n.id], floor) for n in needs}
        result = {}
        for need in needs:
            model, p = self._model_for(need, budgets[need.id], curves, models)
            result[need.id] = Allocation(
                need.id, budgets[need.id],
                f"learned: p(success | {budgets[need.id]} tokens) = {p:.2f} from "
                f"{len(curve_of[need.id])} record(s) of kind {need.kind!r}" + (f"; model {model}" if model else ""),
                model, p)
        return result

    @staticmethod
    def _model_for(need, budget, curves, models) -> tuple[str | None, float]:
        """The model with the best success at this budget (a model with too few records is not preferred)."""
        overall = curves[(need.kind, None)].p(budget)
        if not models:
            return None, overall
        scored = []
        for model in models:
            curve = curves.get((need.kind, model))
            scored.append((curve.p(budget) if curve and len(curve) >= 3 else overall - 1e-6, model))
        p, model = max(scored)
        return model, p


POLICIES = ("uniform", "difficulty", "learned")


def make_policy(name: str, *, records: Callable[[], list[dict]] | None = None, seed: int = 0) -> AllocationPolicy:
    """A policy by name; ``learned`` needs the allocation records (e.g. ``lambda: bank.allocations()``)."""
    if name == "uniform":
        return Uniform()
    if name == "difficulty":
        return DifficultyWeighted()
    if name == "learned":
        return Learned(records or (list), seed=seed)
    raise AllocationError(f"allocation policy {name!r} is unknown: use one of {', '.join(POLICIES)}")
