"""The planner role: splits a task into subtasks with a kind, a difficulty estimate and dependencies.

In order (``make_plan``):
  1. a task written as explicit steps ("First ..., then ..., finally ..."; "1. ... 2. ..."; "Step 1: ...")
     is split into those steps without a model call (``explicit_steps``): each depends on the one before;
  2. else the model plans, asked for JSON constrained to the plan's schema where the provider takes one
     (the embedded model, through a llama.cpp grammar), with one re-ask;
  3. else one subtask, the whole task, with the reason the plan was not used (``Planned.reason``).
An environment that defines its own stages supplies them instead (``plan_from_stages``). Difficulty is
0..1 (0 trivial, 1 very hard).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pydantic import BaseModel, Field, field_validator
from seasoned.models import Budget, Gateway
from seasoned.models.providers import supports_response_schema

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
    """Unique ids, dependencies only on earlier steps (so the plan is acyclic), at most MAX_SUBTASKS; a step
    that repeats an earlier one word for word is that step (a small model may write "Compute" five times)."""
    seen: dict[str, str] = {}
    by_text: dict[str, str] = {}
    cleaned: list[Subtask] = []
    for subtask in plan.subtasks[:MAX_SUBTASKS]:
        text = " ".join(subtask.description.lower().split())
        if not text:
            continue
        if text in by_text:
            seen.setdefault(subtask.id, by_text[text])
            continue
        new_id = f"s{len(cleaned) + 1}"
        seen[subtask.id] = by_text[text] = new_id
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


# --- explicit steps --------------------------------------------------------------------------------
MAX_SPLIT_CHARS = 4000  # longer tasks go to the model planner (the splitter is for tasks written as steps)
_ORDINALS = r"first(?:ly)?|second(?:ly)?|third(?:ly)?|fourth(?:ly)?|fifth(?:ly)?|then|next|after\s+that|afterwards|" \
            r"finally|lastly"
_JOINED = r"then|next|finally|after\s+that"  # the words that also start a step after a comma or "and"
# A step marker: an ordinal starting a sentence ("First", "Then"); "then"/"next"/"finally" after a comma or
# "and" (", then", "and then"); "2." / "2)" / "Step 2:" starting a line; "Step 2:" starting a sentence.
# Every branch starts at one position of a run of spaces (look-behinds), so matching stays linear.
_MARKER = re.compile(rf"(?:^|(?<=[.!?;:])\s++)(?P<word>{_ORDINALS})\b[,:]?\s*+"
                     rf"|(?:,\s*+(?:and\s++)?|(?<!\s)\s++and\s++)(?P<joined>{_JOINED})\b[,:]?\s*+"
                     r"|(?:^|\n)[ \t]*+(?:step\s++)?(?P<number>\d{1,2})[.):]\s++"
                     r"|(?:^|(?<=[.!?;])\s*+)step\s++(?P<stepno>\d{1,2})\s*+[:.-]\s*+", re.IGNORECASE)
_STARTS = ("first", "firstly", "1")
_KINDS = {"compute": ("compute", "calculate", "add", "subtract", "multiply", "divide", "sum", "count", "square"),
          "search": ("find", "search", "look", "locate"), "write": ("write", "draft", "summarize", "summarise"),
          "code": ("code", "implement", "program", "fix"), "check": ("check", "verify", "test", "confirm")}


def explicit_steps(task: str) -> Plan | None:
    """The steps of a task written as a sequence ("First A. Then B, then C." / "1. A\n2. B" / "Step 1: A
    Step 2: B"), each depending on the one before; None when the task is not written so (fewer than two
    steps, or no first step). Text before the first step is context (every subtask sees the whole task);
    a sentence after a step that starts no step of its own belongs to that step."""
    if not isinstance(task, str) or len(task) > MAX_SPLIT_CHARS:
        return None
    markers = list(_MARKER.finditer(task))
    if len(markers) < 2:
        return None
    first = next((markers[0].group(g) for g in ("word", "number", "stepno") if markers[0].group(g)), "").lower()
    if first not in _STARTS:
        return None
    bodies = [task[m.end(): nxt.start() if nxt else len(task)] for m, nxt in zip(markers, [*markers[1:], None])]
    steps = [" ".join(b.split()).strip(" ,;") for b in bodies]
    if len(steps) > MAX_SUBTASKS or any(not step for step in steps):
        return None
    return Plan(subtasks=[Subtask(id=f"s{i}", description=_sentence(step), kind=_kind(step),
                                  depends_on=[f"s{i - 1}"] if i > 1 else [])
                          for i, step in enumerate(steps, 1)])


def _sentence(step: str) -> str:
    return step[0].upper() + step[1:] if step else step


def _kind(step: str) -> str:
    verb = step.split()[0].lower().strip(",.:") if step.split() else ""
    return next((kind for kind, verbs in _KINDS.items() if verb in verbs), "general")


# --- planning ------------------------------------------------------------------------------------
@dataclass
class Planned:
    """A plan and where it came from: ``steps`` (the task's own), ``planner`` (the model's) or ``fallback``
    (one subtask); ``reason`` says why (for a fallback, what was wrong with the model's plan)."""

    plan: Plan
    source: str
    reason: str
    outcome: RoleOutcome[Plan] | None = None


def plan_format() -> dict:
    """The OpenAI-style JSON-schema request for a ``Plan`` (at most ``MAX_SUBTASKS`` subtasks)."""
    subtask = {"type": "object", "additionalProperties": False,
               "required": ["id", "description", "kind", "difficulty", "depends_on"],
               "properties": {"id": {"type": "string"}, "description": {"type": "string"}, "kind": {"type": "string"},
                              "difficulty": {"type": "number"},
                              "depends_on": {"type": "array", "items": {"type": "string"}}}}
    return {"type": "json_schema", "json_schema": {"name": "plan", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["subtasks"],
        "properties": {"subtasks": {"type": "array", "items": subtask, "minItems": 1, "maxItems": MAX_SUBTASKS}}}}}


async def make_plan(gateway: Gateway, task: str, *, budget: Budget | None = None,
                    max_tokens: int = 400) -> Planned:
    """The task's explicit steps, else the planner's plan (sanitized), else a single subtask and why."""
    steps = explicit_steps(task)
    if steps is not None:
        return Planned(steps, "steps", f"the task is written as {len(steps.subtasks)} explicit steps")
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(task=task, max_subtasks=MAX_SUBTASKS)}]
    schema = plan_format() if supports_response_schema(gateway.model) else None
    outcome = await ask_structured(gateway, messages, Plan, role="planner", budget=budget, max_tokens=max_tokens,
                                   temperature=0.2, response_format=schema)
    if not outcome.ok:
        return Planned(single_subtask(task), "fallback", outcome.failure or "the planner gave no plan", outcome)
    plan = sanitize(outcome.value, task)
    if len(plan.subtasks) == 1 and plan.subtasks[0].description == task:
        return Planned(plan, "fallback", "the planner's plan had no usable subtask", outcome)
    return Planned(plan, "planner", f"the planner split the task into {len(plan.subtasks)} subtask(s)", outcome)
