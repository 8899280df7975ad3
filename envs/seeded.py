"""Shared helpers of the generated (seeded) environments: task ids that encode how to regenerate."""

from __future__ import annotations

import random
import re

from .base import EnvError

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
