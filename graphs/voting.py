"""Agreement among candidates and the stop rule's confidence numbers."""

from __future__ import annotations

from collections import Counter
from math import comb


def vote_counts(answers: list[str | None]) -> Counter:
    return Counter(a for a in answers if a is not None)


def majority_stability(answers: list[str | None]) -> tuple[str | None, float]:
    """The most common answer and the probability that it really is the model's most likely answer,
    from the top two vote counts (Adaptive-Consistency's Beta stopping rule): with ``a`` and ``b``
    votes, P(p > 1/2) for p ~ Beta(a + 1, b + 1). 2-0 -> 0.875, 3-0 -> 0.94, 4-1 -> 0.89, 5-1 -> 0.94."""
    top = vote_counts(answers).most_common(2)
    if not top:
        return None, 0.0
    first = top[0][1]
    second = top[1][1] if len(top) > 1 else 0
    alpha, beta = first + 1, second + 1
    n = alpha + beta - 1  # P(Beta(alpha, beta) > 1/2) = P(Binomial(n, 1/2) <= alpha - 1)
    return top[0][0], sum(comb(n, j) for j in range(alpha)) / 2 ** n


def is_ambiguous(answers: list[str | None]) -> bool:
    """True when the top two answers are tied or no answer has half the votes."""
    counts = vote_counts(answers).most_common(2)
    if not counts:
        return False
    if len(counts) == 2 and counts[0][1] == counts[1][1]:
        return True
    return counts[0][1] * 2 < len(answers)


def weighted_votes(answers: list[str | None], weights: list[float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for answer, weight in zip(answers, weights):
        if answer is not None:
            totals[answer] = totals.get(answer, 0.0) + weight
    return totals
