"""Accuracy-versus-compute curves: points with Wilson bands, area relative to the oracle, tokens to reach
an accuracy, and a plot. Shared by ``seasoned bench`` and the benchmark scripts."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from .stats import wilson


def point(correct: int, n: int, tokens_per_task: float, **extra) -> dict:
    """One point of a curve: accuracy with its Wilson 95% band at the tokens per task spent."""
    low, high = wilson(correct, n)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else 0.0, "low": low, "high": high,
            "tokens_per_task": tokens_per_task, **extra}


def _sorted(curve: Sequence[dict]) -> list[tuple[float, float]]:
    return sorted((float(p["tokens_per_task"]), float(p["accuracy"])) for p in curve)


def value_at(curve: Sequence[dict], tokens: float) -> float:
    """The curve's accuracy at ``tokens`` per task: linear between points, 0 before the first point's
    tokens are reached (from the origin), flat after the last (a policy that stopped spending)."""
    points = [(0.0, 0.0)] + _sorted(curve)
    if tokens >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in pairwise(points):
        if x0 <= tokens <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (tokens - x0) / (x1 - x0)
    return 0.0


def area(curve: Sequence[dict], low: float, high: float, steps: int = 400) -> float:
    if high <= low:
        return 0.0
    width = (high - low) / steps
    values = [value_at(curve, low + i * width) for i in range(steps + 1)]
    return width * (sum(values) - (values[0] + values[-1]) / 2)


def auc_relative(curve: Sequence[dict], oracle: Sequence[dict], low: float, high: float) -> float | None:
    """Area under the policy's curve over [low, high] tokens per task, relative to the oracle's."""
    reference = area(oracle, low, high)
    return area(curve, low, high) / reference if reference > 0 else None


def tokens_to_reach(curve: Sequence[dict], accuracy: float) -> float | None:
    """The fewest tokens per task at which the (interpolated) curve reaches ``accuracy``; None if never."""
    points = [(0.0, 0.0)] + _sorted(curve)
    for (x0, y0), (x1, y1) in pairwise(points):
        if y1 >= accuracy:
            return x1 if y1 == y0 or y0 >= accuracy else x0 + (x1 - x0) * (accuracy - y0) / (y1 - y0)
    return None


def summarize(curves: dict[str, Sequence[dict]], oracle: Sequence[dict] | None, reach: Sequence[float]) -> dict:
    """Per policy: AUC relative to the oracle (over the range every curve covers) and tokens to reach."""
    xs = [float(p["tokens_per_task"]) for c in curves.values() for p in c]
    low, high = (min(xs), max(xs)) if xs else (0.0, 0.0)
    out = {}
    for name, curve in curves.items():
        out[name] = {"auc_vs_oracle": auc_relative(curve, oracle, low, high) if oracle else None,
                     "tokens_to_reach": {f"{r:.2f}": tokens_to_reach(curve, r) for r in reach}}
    return out


def plot(curves: dict[str, Sequence[dict]], path: Path, *, oracle: Sequence[dict] | None = None,
         title: str = "accuracy vs tokens per task") -> Path | None:
    """Accuracy against tokens per task, one line per policy with its Wilson band, plus the oracle."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        pts = sorted(curve, key=lambda p: p["tokens_per_task"])
        xs = [p["tokens_per_task"] for p in pts]
        ax.plot(xs, [p["accuracy"] for p in pts], marker="o", label=name)
        ax.fill_between(xs, [p["low"] for p in pts], [p["high"] for p in pts], alpha=0.15)
    if oracle:
        pts = sorted(oracle, key=lambda p: p["tokens_per_task"])
        ax.plot([p["tokens_per_task"] for p in pts], [p["accuracy"] for p in pts], "k--", label="oracle")
    ax.set_xlabel("tokens per task")
    ax.set_ylabel("accuracy (end-to-end success)")
    ax.set_title(title)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
