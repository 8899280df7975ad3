"""``addition``: adding two whole numbers; difficulty = digits per number (1..4), checked by exact value.

The classic probe of test-time scaling on small models: SmolLM2-135M answers two-digit additions right
about one time in ten per sample, so coverage grows with samples when a checker exists.
"""

from __future__ import annotations

from fractions import Fraction

from .answers import format_number, last_number
from .base import Environment, Task, Verdict
from .seeded import make_id, parse_id, plan, rng

LEVELS = range(1, 5)


class AdditionEnv(Environment):
    name = "addition"
    description = "Add two whole numbers; difficulty = digits per number (1..4)."

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        low = 10 ** (d - 1) if d > 1 else 0
        a, b = r.randint(low, 10 ** d - 1), r.randint(low, 10 ** d - 1)
        prompt = f"What is {a} + {b}?\nGive the final answer on the last line as: Answer: <number>"
        return Task(make_id(self.name, d, k), self.name, prompt, difficulty=d,
                    metadata={"a": a, "b": b, "answer": str(a + b)})

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
        ok = got is not None and Fraction(got) == Fraction(want)
        return Verdict(float(ok), ok, {"extracted": got, "expected": want})
