"""Small statistics shared by the benchmarks: intervals that let a reader tell a real gain from noise."""

from __future__ import annotations

import math
from collections.abc import Sequence


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a success rate (95% by default); (0, 0) for no trials."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def tokens_per_solved(tokens: Sequence[float], passed: Sequence[bool]) -> float | None:
    """All tokens spent divided by the tasks solved (None when none was solved)."""
    solved = sum(bool(p) for p in passed)
    return sum(tokens) / solved if solved else None


def windows(passed: Sequence[bool], tokens: Sequence[float], size: int) -> list[dict]:
    """Consecutive, non-overlapping windows of a task stream (the last one may be shorter)."""
    if size < 1:
        raise ValueError(f"window size must be >= 1, got {size}")
    out = []
    for start in range(0, len(passed), size):
        p, t = passed[start:start + size], tokens[start:start + size]
        out.append({"start": start, "n": len(p), "correct": sum(bool(x) for x in p),
                    "success": sum(bool(x) for x in p) / len(p), "tokens_per_solved": tokens_per_solved(t, p)})
    return out


def rolling(passed: Sequence[bool], tokens: Sequence[float], size: int) -> tuple[list[float], list[float | None]]:
    """Trailing-window success rate and tokens per solved task at every position of the stream."""
    success, per_solved = [], []
    for end in range(1, len(passed) + 1):
        p, t = passed[max(0, end - size):end], tokens[max(0, end - size):end]
        success.append(sum(bool(x) for x in p) / len(p))
        per_solved.append(tokens_per_solved(t, p))
    return success, per_solved
