"""``wordproblems``: multi-stage word problems (difficulty = number of stages, 2..5) for budget allocation.

Each problem follows one quantity through a chain of stages of different kinds (multiply, percent,
add/remove, divide into groups, unit price); ``Task.stages`` lists them and ``metadata["stage_answers"]``
holds each intermediate value, so a multi-stage graph can verify stage by stage. Numbers are chosen so
every intermediate value is a whole number."""

from __future__ import annotations

import random

from .base import Stage, Task
from .seeded import SeededNumericEnv, make_id, rng


SETTINGS = [
    {"who": "A bakery", "thing": "muffins", "unit": "tray", "container": "boxes"},
    {"who": "A warehouse", "thing": "parcels", "unit": "truck", "container": "crates"},
    {"who": "A school library", "thing": "books", "unit": "donation box", "container": "shelves"},
    {"who": "A farm", "thing": "apples", "unit": "basket", "container": "bags"},
    {"who": "A print shop", "thing": "posters", "unit": "batch", "container": "folders"},
]


def _stage(r: random.Random, kind: str, value: int, s: dict) -> tuple[str, str, int] | None:
    """(sentence, stage description, new value) for one stage applied to ``value``; None if it cannot."""
    thing = s["thing"]
    if kind == "multiply":
        k = r.randint(2, 6)
        return (f"Then it gets {k} times as many {thing} as it has.",
                f"multiply the current number of {thing} by {k}", value * k)
    if kind == "add":
        per = r.randint(3, 12) * r.randint(2, 5)
        return (f"Then {per} more {thing} arrive, one full {s['unit']} of {per}.",
                f"add the {per} {thing} that arrive", value + per)
    if kind == "remove":
        if value < 4:
            return None
        k = r.randint(1, value // 2)
        return (f"Then {k} {thing} are given away.", f"subtract the {k} {thing} given away", value - k)
    if kind == "percent":
        options = [p for p in (10, 20, 25, 40, 50, 75) if value * p % 100 == 0]
        if not options:
            return None
        p = r.choice(options)
        return (f"Then {p}% of the {thing} are sold.", f"remove {p}% of the current {thing}", value - value * p // 100)
    if kind == "divide":
        divisors = [d for d in range(2, 10) if value % d == 0]
        if not divisors:
            return None
        d = r.choice(divisors)
        return (f"Then the {thing} are packed equally into {d} {s['container']}, and one of those {s['container']} "
                f"is kept for the next steps.", f"divide the current {thing} by {d}", value // d)
    if kind == "price":
        price = r.randint(2, 9)
        return (f"Finally, each of the remaining {thing} sells for ${price}.",
                f"multiply the remaining {thing} by the price ${price}", value * price)
    raise ValueError(kind)


class WordProblemsEnv(SeededNumericEnv):
    LEVELS = range(2, 6)
    name = "wordproblems"
    description = "Multi-stage word problems (2..5 stages of different kinds), with per-stage answers."

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        setting = r.choice(SETTINGS)
        value = r.randint(3, 12) * r.choice([4, 5, 6, 8, 10])
        sentences = [f"{setting['who']} starts the day with {value} {setting['thing']}."]
        stages: list[Stage] = []
        answers: list[str] = []
        kinds = ["multiply", "add", "remove", "percent", "divide"]
        while len(stages) < d:
            kind = "price" if len(stages) == d - 1 and r.random() < 0.4 else r.choice(kinds)
            step = _stage(r, kind, value, setting)
            if step is None:
                continue
            sentence, description, value = step
            sentences.append(sentence)
            stages.append(Stage(f"stage{len(stages) + 1}", kind, description[0].upper() + description[1:] + "."))
            answers.append(str(value))
        question = ("How many dollars does it make?" if stages[-1].kind == "price"
                    else f"How many {setting['thing']} are there at the end?")
        prompt = " ".join(sentences) + f" {question} Finish with 'Answer: <number>'."
        return Task(make_id(self.name, d, k), self.name, prompt, stages=stages, difficulty=d,
                    metadata={"answer": str(value), "stage_answers": answers})





