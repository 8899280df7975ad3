"""The planner role: splits a task into subtasks with a kind, a difficulty estimate and dependencies.

An environment that defines its own stages supplies them instead (``plan_from_stages``). Any planner
failure falls back to one subtask: the whole task. Difficulty is 0..1 (0 trivial, 1 very hard).
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, Field, field_validator
from seasoned.models import Budget, Gateway

from .base import RoleOutcome, ask_structured

MAX_SUBTASKS = 8
SYSTEM = "You break tasks into small steps. You reply with JSON only."
PROMPT = """Task:
{task}

Split the task into at most {max_subtasks} steps that can be solved one at a time. For each step give an
id (s1, s2, ...), a short description, a kind (one word, e.g. compute, search, write, code, check),
a difficulty from 0 (trivial) to 1 (very hard), and the ids of the steps it needs. Reply with JSON only:
{{"subtasks": [{{"id": "s1", "description": "...", "kind": "compute", "difficulty": 0.3, "depends_on": []}}]}}"""


class Subtask(BaseModel):
    id: str
    description: str
    kind: str = "general"
    difficulty: float = 0.5
    depends_on: list[str] = Field(default_factory=list)

    @field_validator("difficulty", mode="before")
    @classmethod
    def _clamp(cls, value):
        """Model output: anything that is not a finite number ("nan", "inf", 1e999, a list) means 0.5."""
        if isinstance(value, bool):
            return 0.5
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return 0.5
        if not math.isfinite(number):
            return 0.5
        number = number / 10 if number > 1 else number  # "7" on a 0-10 scale
        return min(max(number, 0.0), 1.0)

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value):
        word = re.sub(r"[^a-z0-9_]+", "_", str(value or "general").lower()).strip("_")
        return word[:40] or "general"


class Plan(BaseModel):
    subtasks: list[Subtask] = Field(default_factory=list)


def single_subtask(task: str, kind: str = "general", difficulty: float = 0.5) -> Plan:
    return Plan(subtasks=[Subtask(id="s1", description=task, kind=kind, difficulty=difficulty)])


def sanitize(plan: Plan, task: str) -> Plan:
    """Unique ids, dependencies only on earlier steps (so the plan is acyclic), at most MAX_SUBTASKS."""
    seen: dict[str, str] = {}
    cleaned: list[Subtask] = []
    for index, subtask in enumerate(plan.subtasks[:MAX_SUBTASKS]):
        if not subtask.description.strip():
            continue
        new_id = f"s{len(cleaned) + 1}"
        seen[subtask.id] = new_id
        depends = [seen[d] for d in subtask.depends_on if d in seen and seen[d] != new_id]
        cleaned.append(subtask.model_copy(update={"id": new_id, "depends_on": sorted(set(depends))}))
    return Plan(subtasks=cleaned) if cleaned else single_subtask(task)


def plan_from_stages(stages, *, difficulties: dict[str, float] | None = None, chained: bool = True) -> Plan:
    """Subtasks from an environment's stages; each depends on the previous one when ``chained``."""
    subtasks = []
    for index, stage in enumerate(stages):
        depends = [f"s{index}"] if chained and index else []
        own = getattr(stage, "difficulty", None)
        difficulty = own if own is not None else (difficulties or {}).get(stage.kind, 0.5)
        subtasks.append(Subtask(id=f"s{index + 1}", description=stage.description, kind=stage.kind,
                                difficulty=difficulty, depends_on=depends))
    return Plan(subtasks=subtasks)


async def make_plan(gateway: Gateway, task: str, *, budget: Budget | None = None,
                    max_tokens: int = 400) -> tuple[Plan, RoleOutcome[Plan]]:
    """The planner's plan (sanitized), or a single subtask when its output is unusable."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(task=task, max_subtasks=MAX_SUBTASKS)}]
    outcome = await ask_structured(gateway, messages, Plan, role="planner", budget=budget, max_tokens=max_tokens,
                                   temperature=0.2)
    if not outcome.ok or not outcome.value.subtasks:
        return single_subtask(task), outcome
    return sanitize(outcome.value, task), outcome
