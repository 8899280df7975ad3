"""The verifier role: an LLM judge that scores a candidate answer (used when no environment check exists)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator
from seasoned.models import Budget, Gateway

from .base import RoleOutcome, ask_structured

SYSTEM = "You check answers strictly. You reply with JSON only."
PROMPT = """Task:
{task}

Proposed answer:
{answer}

Is the proposed answer correct and complete for the task? Reply with JSON only:
{{"correct": true or false, "score": a number from 0 to 1 (your confidence that it is correct), "reason": "one sentence"}}"""


class Judgement(BaseModel):
    correct: bool = False
    score: float = Field(default=0.5)
    reason: str = ""

    @field_validator("score", mode="before")
    @classmethod
    def _clamp(cls, value):
        try:
            number = float(str(value).strip().rstrip("%"))
        except ValueError:
            return 0.5
        number = number / 100 if number > 1 else number
        return min(max(number, 0.0), 1.0)

    @field_validator("correct", mode="before")
    @classmethod
    def _truthy(cls, value):
        if isinstance(value, str):
            return value.strip().lower() in {"true", "yes", "correct", "1"}
        return bool(value)


def _from_words(text: str) -> Judgement | None:
    """Salvage a verdict from prose: a leading yes/no or 'correct'/'incorrect'."""
    lowered = text.strip().lower()
    if re.match(r"^(no|incorrect|wrong|false)\b", lowered) or "incorrect" in lowered[:80]:
        return Judgement(correct=False, score=0.2, reason=text.strip()[:200])
    if re.match(r"^(yes|correct|true|right)\b", lowered):
        return Judgement(correct=True, score=0.8, reason=text.strip()[:200])
    return None


async def judge(gateway: Gateway, task: str, answer: str, *, budget: Budget | None = None,
                model: str | None = None, max_tokens: int = 96) -> RoleOutcome[Judgement]:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(task=task, answer=answer)}]
    return await ask_structured(gateway, messages, Judgement, role="verifier", budget=budget,
                                max_tokens=max_tokens, temperature=0.0, fallback=_from_words, model=model)
