"""Budget allocation policies: how a multi-stage task's token budget is split across its subtasks.

- ``uniform``: equal shares.
- ``difficulty``: shares proportional to the planner's difficulty estimates (after Plan-and-Budget / SCALE).
- ``learned``: from the memory's allocation records of earlier runs, a success-vs-budget curve per subtask
  kind (and model); the split greedily maximises the expected end-to-end success (the product of the
  subtasks' success probabilities) within the total, and given several models it picks the model per
  subtask (after AgentTTS). Kinds with few records are explored (difficulty share, jittered budgets).

Allocations are caps, recomputed over the remaining subtasks every time some are dispatched, so
budget a finished subtask did not spend flows on to the rest. Every decision carries its reason.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from seasoned.models.errors import SeasonedError

DIFFICULTY_FLOOR = 0.25  # an "easy" subtask still gets a share


class AllocationError(SeasonedError, ValueError):
    pass


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

    def to_dict(self) -> dict:
        return {"subtask": self.subtask, "tokens": self.tokens, "model": self.model, "reason": self.reason,
                "expected_success": None if self.expected_success is None else round(self.expected_success, 4)}


class AllocationPolicy(Protocol):
    name: str

    def allocate(self, needs: Sequence[SubtaskNeed], total_tokens: int,
                 models: Sequence[str] | None = None) -> dict[str, Allocation]: ...


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

    def __init__(self, records: Callable[[], list[dict]], *, min_records: int = 6, step_fraction: float = 0.05,
                 min_share: float = 0.15, explore: float = 0.25, hopeless: float = 0.1, seed: int = 0):
        self.records = records
        self.min_records = min_records
        self.step_fraction = step_fraction
        self.min_share = min_share
        self.explore = explore
        self.hopeless = hopeless
        self.rng = random.Random(seed)

    def curves(self) -> dict[tuple[str, str | None], SuccessCurve]:
        curves: dict[tuple[str, str | None], SuccessCurve] = {}
        for record in self.records():
            kind = record.get("subtask_kind")
            if not kind:
                continue
            entry = (_tokens(record.get("budget")), _tokens(record.get("spent")), bool(record.get("success")))
            curves.setdefault((kind, record.get("model")), SuccessCurve()).records.append(entry)
            curves.setdefault((kind, None), SuccessCurve()).records.append(entry)
        return curves

    def allocate(self, needs, total_tokens, models=None):
        curves = self.curves()
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
