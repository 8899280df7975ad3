"""``arithmetic``: integer expressions of growing size (difficulty 1..5), checked by exact value."""

from __future__ import annotations

import random
from fractions import Fraction

from .answers import format_number
from .base import Task
from .seeded import SeededNumericEnv, make_id, rng



def _expression(r: random.Random, ops: int, hi: int) -> tuple[str, Fraction]:
    """A random expression with ``ops`` operators (+, -, *, exact /) and its exact value."""
    if ops == 0:
        value = r.randint(1, hi)
        return str(value), Fraction(value)
    left_ops = r.randint(0, ops - 1)
    left, lv = _expression(r, left_ops, hi)
    right, rv = _expression(r, ops - 1 - left_ops, hi)
    op = r.choice("+-*/" if rv != 0 and lv % rv == 0 and rv != 1 else "+-*")
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else lv}[op]
    wrap = lambda s: s if s.isdigit() else f"({s})"  # noqa: E731
    return f"{wrap(left)} {op} {wrap(right)}", value


class ArithmeticEnv(SeededNumericEnv):
    LEVELS = range(1, 6)
    name = "arithmetic"
    description = "Integer arithmetic expressions; difficulty 1..5 = more operators, larger numbers."

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        text, value = _expression(r, d + 1, 9 * 10 ** ((d - 1) // 2))
        prompt = (f"Compute the exact value of the expression below. Finish with 'Answer: <number>'.\n\n"
                  f"{text}")
        return Task(make_id(self.name, d, k), self.name, prompt, difficulty=d,
                    metadata={"expression": text, "answer": format_number(value)})




