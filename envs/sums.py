"""``sums``: several additions of different sizes in one task, each a stage (multi-stage, unequal difficulty).

Stage kinds are ``add1`` .. ``add4`` (digits per number), so a budget allocator can learn per kind how much
compute a stage needs. Stages are independent and self-contained; the task is solved when every stage's
sum is right. Difficulty = number of stages (2..5); the mix of sizes is seeded.
"""

from __future__ import annotations

from .answers import _MARKED, format_number, last_number, parse_number, tail
from .base import Stage, Task, Verdict
from .seeded import SeededNumericEnv, make_id, rng

DIFFICULTY = {1: 0.2, 2: 0.6, 3: 0.9}  # more digits, more carries to get right
ANSWER_FORMAT = "Give the final answer on the last line as: Answer: <number>"


class SumsEnv(SeededNumericEnv):
    LEVELS = range(2, 6)
    name = "sums"
    description = "Several additions of different sizes (stages add1..add4), all must be right."
    stages_self_contained = True

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        stages, answers = [], []
        for index in range(d):
            digits = r.choice([1, 1, 2, 2, 3])
            low = 10 ** (digits - 1) if digits > 1 else 1
            a, b = r.randint(low, 10 ** digits - 1), r.randint(low, 10 ** digits - 1)
            stages.append(Stage(f"stage{index + 1}", f"add{digits}", f"What is {a} + {b}?\n{ANSWER_FORMAT}",
                                difficulty=DIFFICULTY[digits]))
            answers.append(str(a + b))
        questions = "\n".join(f"{i + 1}. {s.description.splitlines()[0]}" for i, s in enumerate(stages))
        prompt = f"Answer each question:\n{questions}\nEnd with one line per question: Answer: <number>"
        return Task(make_id(self.name, d, k), self.name, prompt, stages=stages, difficulty=d,
                    metadata={"answer": " ".join(answers), "stage_answers": answers})




    def _answers(self, text: str) -> list[str]:
        """Every 'Answer: N' line, in order (the aggregated answer of all stages)."""
        found = []
        for marked in _MARKED.findall(tail(text)):
            value = last_number(marked)
            if value is not None:
                found.append(format_number(value))
        return found

    async def verify(self, task: Task, answer: str) -> Verdict:
        want = task.metadata["stage_answers"]
        got = self._answers(answer)
        right = sum(1 for g, w in zip(got, want) if parse_number(g) == parse_number(w))
        ok = len(got) == len(want) and right == len(want)
        return Verdict(right / len(want), ok, {"got": got, "expected": want})

