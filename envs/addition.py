"""``addition``: adding two whole numbers; difficulty = digits per number (1..4), checked by exact value.

The classic probe of test-time scaling on small models: SmolLM2-135M answers two-digit additions right
about one time in ten per sample, so coverage grows with samples when a checker exists.
"""

from __future__ import annotations


from .base import Task
from .seeded import SeededNumericEnv, make_id, rng



class AdditionEnv(SeededNumericEnv):
    LEVELS = range(1, 5)
    name = "addition"
    description = "Add two whole numbers; difficulty = digits per number (1..4)."

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        low = 10 ** (d - 1) if d > 1 else 0
        a, b = r.randint(low, 10 ** d - 1), r.randint(low, 10 ** d - 1)
        prompt = f"What is {a} + {b}?\nGive the final answer on the last line as: Answer: <number>"
        return Task(make_id(self.name, d, k), self.name, prompt, difficulty=d,
                    metadata={"a": a, "b": b, "answer": str(a + b)})




