"""Shared helpers of the generated (seeded) environments: task ids that encode how to regenerate."""

from __future__ import annotations

import random
import re

from seasoned.errors import EnvError

from .answers import format_number, last_number, parse_number
from .base import Environment, Task, Verdict

_ID = re.compile(r"^(?P<env>[a-z0-9_]+)-d(?P<d>\d+)-(?P<k>\d+)$")


def make_id(env: str, difficulty: int, k: int) -> str:
    return f"{env}-d{difficulty}-{k}"


def parse_id(env: str, task_id: str, levels: range) -> tuple[int, int]:
    """``game24-d2-17`` -> (2, 17); a clear ``EnvError`` otherwise."""
    match = _ID.match(task_id or "")
    if not match or match["env"] != env:
        raise EnvError(f"environment {env!r} has no task {task_id!r} (ids look like {make_id(env, levels[0], 0)})")
    d = int(match["d"])
    if d not in levels:
        raise EnvError(f"task {task_id!r}: difficulty {d} is out of range {levels.start}..{levels.stop - 1}")
    return d, int(match["k"])


def rng(env: str, difficulty: int, k: int) -> random.Random:
    return random.Random(f"{env}:{difficulty}:{k}")


def plan(env: str, n: int | None, seed: int, difficulty: int | None, levels: range,
         default_n: int = 20) -> list[tuple[int, int]]:
    """(difficulty, k) pairs for ``tasks()``: a fixed difficulty, or cycling through the levels."""
    if difficulty is not None and difficulty not in levels:
        raise EnvError(f"environment {env!r}: difficulty must be in {levels.start}..{levels.stop - 1}, "
                       f"got {difficulty}")
    count = default_n if n is None else n
    if count < 0:
        raise EnvError(f"n must be >= 0, got {count}")
    pairs = []
    for i in range(count):
        d = difficulty if difficulty is not None else levels[i % len(levels)]
        pairs.append((d, seed * 100_000 + i))
    return pairs


class SeededNumericEnv(Environment):
    """A generated environment whose tasks have one numeric answer (``metadata["answer"]``), optionally
    stages with their own (``metadata["stage_answers"]``). Subclasses set ``LEVELS`` and ``_make(d, k)``."""

    LEVELS: range = range(1, 2)

    def _make(self, d: int, k: int) -> Task:
        raise EnvError(f"environment {self.name!r} cannot generate tasks")

    def tasks(self, n=None, seed=0, difficulty=None) -> list[Task]:
        return [self._make(d, k) for d, k in plan(self.name, n, seed, difficulty, self.LEVELS)]

    def get_task(self, task_id: str) -> Task:
        return self._make(*parse_id(self.name, task_id, self.LEVELS))

    def extract_answer(self, text: str) -> str | None:
        value = last_number(text)
        return None if value is None else format_number(value)

    def _judge(self, text: str, want: str, **details) -> Verdict:
        got = self.extract_answer(text)
        if got is None:
            return Verdict(0.0, False, {"reason": "no number found in the answer", "expected": want, **details})
        ok = parse_number(got) == parse_number(want)
        return Verdict(float(ok), ok, {"extracted": got, "expected": want, **details})

    async def verify(self, task: Task, answer: str) -> Verdict:
        return self._judge(answer, task.metadata["answer"])

    async def verify_stage(self, task: Task, stage_index: int, answer: str) -> Verdict:
        """Judge the answer to one stage (its intermediate value)."""
        return self._judge(answer, task.metadata["stage_answers"][stage_index], stage=stage_index)
