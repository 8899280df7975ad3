"""What the records say about a kind of question: its hierarchical success model, with its uncertainty.

Questions of one kind (per namespace, model and environment; per subtask kind in multi-stage work) each have
their own per-sample chance ``p`` of a verified answer, ``p ~ Beta(m s, (1 - m) s)``: ``m`` the kind's mean,
``s`` how alike its questions are (large ``s``: all about as hard; small ``s``: some easy, some hopeless).
``(m, s)`` are not known: a grid of them carries their posterior given the kind's records (a weak hyper-prior
times the beta-binomial likelihood: a record of n samples, k of them verified, has probability B(a + k, b + n -
k) / B(a, b); one that stopped unverified after n samples B(a, b + n) / B(a, b), so give-ups and budget stops
are censored observations, not misread as hopeless). A kind with few records keeps its uncertainty (the posterior
spreads over many (m, s)); it is never reduced to its most likely point, which for 30 records can be "most
questions are hopeless" and give up after one sample (issue 25).

A question's own failures update both levels (``KindPosterior.wave_success``: the posterior predictive).

**Agreement on a rejected answer.** A question whose failed samples keep repeating the same wrong answer may be
one the model is stuck on, or not: that is learned too. The records keep each question's sample sequence
(``pattern``); every point of it where the next sample was drawn after ``n`` failures, a share ``x`` of which
repeated an earlier rejected answer, is a prediction of the predictive above times ``exp(beta x)``. ``beta``
has a standard normal prior and a grid posterior from those predictions (``fit_agreement``): with no records
it changes nothing on average (and ``E[exp(beta x)] >= 1``: caution), and it moves only as far as the records
show that agreement predicts failure (or success).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

MIN_RECORDS = 6  # sampled records of a kind before the learned allocation trusts its prior
# The hyper-grid: kind means (logit-spaced) and strengths (log-spaced); the hyper-prior is uniform on the mean
# and log-normal on the strength around STRENGTH_PRIOR (a kind's questions are assumed about as alike as
# Beta(1, 3)'s until records say otherwise).
_GRID_MEANS = [1 / (1 + math.exp(-(-6.0 + 0.35 * i))) for i in range(36)]
_GRID_STRENGTHS = [0.25 * 2 ** (i / 2) for i in range(21)]
STRENGTH_PRIOR = (math.log(4.0), 1.25)  # mean and sd of log(strength)
_KEEP = 1e-7  # grid points with less posterior weight than this (relative to the largest) are dropped


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_wave_success(alpha: float, beta: float, failures: int, wave: int) -> float:
    """P(at least one of the next ``wave`` samples succeeds) for p ~ Beta(alpha, beta) after ``failures``."""
    miss = 1.0
    for j in range(wave):
        b = beta + failures + j
        miss *= b / (alpha + b)
    return 1.0 - miss


class SuccessPrior(Protocol):
    """What the rules read from a kind's model: the predictive, tokens per sample, how many records."""

    tokens: float
    records: int

    @property
    def mean(self) -> float: ...

    def wave_success(self, failures: int, wave: int) -> float: ...

    def describe(self) -> str: ...

    def as_spec(self) -> dict: ...


@dataclass(frozen=True)
class KindPrior:
    """One known Beta(alpha, beta) over a kind's per-question success rate (e.g. a simulator's true kind)."""

    alpha: float
    beta: float
    tokens: float
    records: int = 0

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def wave_success(self, failures: int, wave: int) -> float:
        """P(at least one of the next ``wave`` samples succeeds | ``failures`` failures so far)."""
        return _beta_wave_success(self.alpha, self.beta, failures, wave)

    def coverage(self, samples: int) -> float:
        """P(success within ``samples`` samples) for a fresh question of this kind."""
        return self.wave_success(0, samples)

    def describe(self) -> str:
        return (f"Beta({self.alpha:.2f}, {self.beta:.2f}) mean {self.mean:.3f}, {self.tokens:.0f} tokens/sample, "
                f"{self.records} record(s)")

    def as_spec(self) -> dict:
        return {"components": [[1.0, self.alpha, self.beta]], "tokens": self.tokens, "records": self.records}


@dataclass(frozen=True)
class KindPosterior:
    """The hierarchical posterior of a kind: weighted Beta(alpha, beta) components (the hyper-grid points
    that the records leave plausible) over the per-question success rate."""

    components: tuple[tuple[float, float, float], ...]  # (weight, alpha, beta); weights sum to 1
    tokens: float
    records: int = 0
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def mean(self) -> float:
        return sum(w * a / (a + b) for w, a, b in self.components)

    def given_failures(self, failures: int) -> list[tuple[float, float, float]]:
        """The components' weights once this question has failed ``failures`` times (their Betas unchanged)."""
        if failures <= 0:
            return list(self.components)
        logs = [math.log(w) + _log_beta(a, b + failures) - _log_beta(a, b) for w, a, b in self.components]
        top = max(logs)
        weights = [math.exp(x - top) for x in logs]
        total = sum(weights)
        return [(x / total, a, b) for x, (_, a, b) in zip(weights, self.components)]

    def wave_success(self, failures: int, wave: int) -> float:
        """The posterior predictive: P(at least one of the next ``wave`` samples is verified | ``failures``)."""
        key = (failures, wave)
        if key not in self._cache:
            self._cache[key] = sum(w * _beta_wave_success(a, b, failures, wave)
                                   for w, a, b in self.given_failures(failures))
        return self._cache[key]

    def coverage(self, samples: int) -> float:
        return self.wave_success(0, samples)

    def spread(self) -> tuple[float, float]:
        """(5th, 95th) percentile of the kind's mean under the posterior: how sure the records make it."""
        ranked = sorted((a / (a + b), w) for w, a, b in self.components)
        cumulative, low, high = 0.0, ranked[0][0], ranked[-1][0]
        for mean, weight in ranked:
            if cumulative < 0.05 <= cumulative + weight:
                low = mean
            if cumulative < 0.95 <= cumulative + weight:
                high = mean
            cumulative += weight
        return low, high

    def describe(self) -> str:
        low, high = self.spread()
        return (f"mean {self.mean:.3f} (90% {low:.3f}-{high:.3f}), {self.tokens:.0f} tokens/sample, "
                f"{self.records} record(s)")

    def as_spec(self) -> dict:
        return {"components": [list(c) for c in self.components], "tokens": self.tokens, "records": self.records}


def prior_from_spec(spec: dict) -> KindPosterior:
    """The prior a ``spec`` carries (a posterior's components, or the older single ``alpha``/``beta``)."""
    components = spec.get("components") or [[1.0, spec["alpha"], spec["beta"]]]
    return KindPosterior(tuple((float(w), float(a), float(b)) for w, a, b in components),
                         float(spec["tokens"]), int(spec.get("records", 0)))


def fit_posterior(observations: Iterable[tuple[int, int]], tokens: float) -> KindPosterior:
    """The hierarchical posterior of a kind from (samples drawn, how many verified) observations (a bool for the
    second: verified once, at the last sample); none: the hyper-prior."""
    counts = Counter((int(n), min(int(ok), int(n))) for n, ok in observations if int(n) > 0)
    centre, spread = STRENGTH_PRIOR
    points = []
    for mean in _GRID_MEANS:
        for strength in _GRID_STRENGTHS:
            a, b = mean * strength, (1 - mean) * strength
            log_weight = math.log(mean * (1 - mean)) - 0.5 * ((math.log(strength) - centre) / spread) ** 2
            base = _log_beta(a, b)
            for (n, wins), count in counts.items():
                log_weight += count * (_log_beta(a + wins, b + n - wins) - base)
            points.append((log_weight, a, b))
    top = max(p[0] for p in points)
    kept = [(math.exp(x - top), a, b) for x, a, b in points if x - top > math.log(_KEEP)]
    total = sum(w for w, _, _ in kept)
    return KindPosterior(tuple((w / total, a, b) for w, a, b in kept), max(float(tokens), 1.0),
                         sum(counts.values()))


def record_tokens(records: Sequence[dict]) -> float | None:
    """Mean tokens per sample over records that say what they spent and how many samples they drew."""
    spent = [_tokens(r.get("spent")) / r["samples"] for r in records
             if isinstance(r.get("samples"), int) and r["samples"] > 0 and _tokens(r.get("spent")) > 0]
    return sum(spent) / len(spent) if spent else None


def _tokens(value) -> float:
    if isinstance(value, dict):
        return float(value.get("tokens") or value.get("max_tokens") or 0)
    return float(value or 0)


def priors_from_records(records: Sequence[dict], *, min_records: int = MIN_RECORDS
                        ) -> dict[tuple[str, str | None], KindPosterior]:
    """Per (kind, model) and per (kind, None) the posterior, from records that say how many samples were drawn
    (``samples``); kinds with fewer than ``min_records`` such records are left out."""
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
            priors[key] = fit_posterior([(n, ok) for n, ok, _ in entries], tokens)
    return priors


# --- agreement on a rejected answer ----------------------------------------------------------------------
_AGREEMENT_GRID = [-4.0 + 0.25 * i for i in range(25)]  # beta, the log hazard ratio of an all-repeat question
MAX_PATTERN = 64  # samples a pattern keeps


def sample_pattern(answers: Sequence[str | None], verified: Sequence[bool]) -> str:
    """A question's samples in order, as the records keep them: ``+`` verified, else the index of its answer
    among the distinct rejected answers so far (``x``: no answer, which repeats nothing)."""
    seen: dict[str, int] = {}
    out = []
    for answer, ok in list(zip(answers, verified))[:MAX_PATTERN]:
        if ok:
            out.append("+")
        elif answer is None:
            out.append("x")
        else:
            out.append(str(seen.setdefault(answer, len(seen))))
    return ",".join(out)


def repeat_share(pattern_or_keys: Sequence[str]) -> float:
    """The share of failed samples after the first that repeated an earlier rejected answer."""
    fails = [k for k in pattern_or_keys if k != "+"]
    if len(fails) < 2:
        return 0.0
    seen, repeats = set(), 0
    for key in fails:
        repeats += key != "x" and key in seen
        seen.add(key)
    return repeats / (len(fails) - 1)


def _prefix_points(pattern: str) -> list[tuple[int, float, bool]]:
    """(failures so far, their repeat share, was the next sample verified) for each point of a pattern at which
    a further sample was drawn after at least two failures (before that, nothing can repeat)."""
    keys = [k for k in str(pattern).split(",")[:MAX_PATTERN] if k]
    points = []
    for n in range(2, len(keys)):
        if "+" in keys[:n]:
            break
        points.append((n, repeat_share(keys[:n]), keys[n] == "+"))
    return points


def _with_hazard(base: float, factor: float) -> float:
    return min(max(base * factor, 1e-9), 1 - 1e-9)


def fit_agreement(records: Sequence[dict], prior: SuccessPrior) -> tuple[tuple[float, float], ...]:
    """The posterior over ``beta`` (weight, beta) on a grid, from the records' patterns and the kind's model."""
    points = Counter(p for r in records for p in _prefix_points(r.get("pattern") or ""))
    logs = []
    for beta in _AGREEMENT_GRID:
        log = -0.5 * beta * beta
        for (n, share, ok), count in points.items():
            q = _with_hazard(prior.wave_success(n, 1), math.exp(beta * share))
            log += count * math.log(q if ok else 1 - q)
        logs.append(log)
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = sum(weights)
    return tuple((w / total, beta) for w, beta in zip(weights, _AGREEMENT_GRID) if w / total > 1e-6)


def with_agreement(prior: SuccessPrior, agreement: Sequence[Sequence[float]], failures: int, share: float,
                   wave: int) -> float:
    """P(the next ``wave`` samples include a verified one | ``failures``, a share ``share`` of them repeats)."""
    if share <= 0 or not agreement:
        return prior.wave_success(failures, wave)
    total = 0.0
    for weight, beta in agreement:
        factor, miss = math.exp(beta * share), 1.0
        for j in range(wave):
            miss *= 1 - _with_hazard(prior.wave_success(failures + j, 1), factor)
        total += weight * (1 - miss)
    return total
