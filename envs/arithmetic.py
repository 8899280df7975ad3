"""``arithmetic``: integer expressions of growing size (difficulty 1..5), checked by exact value."""

from __future__ import annotations

import random
from fractions import Fraction

from .answers import format_number, last_number
from .base import Environment, Task, Verdict
from .seeded import make_id, parse_id, plan, rng

LEVELS = range(1, 6)


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


class ArithmeticEnv(Environment):
    name = "arithmetic"
    description = "Integer arithmetic expressions; difficulty 1..5 = more operators, larger numbers."

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        text, value = _expression(r, d + 1, 9 * 10 ** ((d - 1) // 2))
        prompt = (f"Compute the exact value of the expression below. Finish with 'Answer: <number>'.\n\n"
                  f"{text}")
        return Task(make_id(self.name, d, k), self.name, prompt, difficulty=d,
                    metadata={"expression": text, "answer": format_number(value)})

    def tasks(self, n=None, seed=0, difficulty=None) -> list[Task]:
        return [self._make(d, k) for d, k in plan(self.name, n, seed, difficulty, LEVELS)]

    def get_task(self, task_id: str) -> Task:
        return self._make(*parse_id(self.name, task_id, LEVELS))

    def extract_answer(self, text: str) -> str | None:
        value = last_number(text)
        return None if value is None else format_number(value)

    async def verify(self, task: Task, answer: str) -> Verdict:
        got = self.extract_answer(answer)
        want = task.metadata["answer"]
        if got is None:
            return Verdict(0.0, False, {"reason": "no number found in the answer", "expected": want})
        ok = Fraction(got) == Fraction(want)
        return Verdict(float(ok), ok, {"extracted": got, "expected": want})
