"""The verifier role: an LLM judge that scores a candidate answer (used when no environment check exists).

Where the provider supports structured output (a JSON schema; the embedded model through a llama.cpp
grammar), the judge asks for it, so a verdict costs one call; an unusable reply is re-asked once (with the
schema again where there is one), then the judgement is "no verdict".
"""

from __future__ import annotations

import math
import re

from pydantic import BaseModel, Field, field_validator
from seasoned.models import Budget, Gateway
from seasoned.models.providers import supports_response_schema

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
        if not math.isfinite(number):  # "nan" would poison every confidence it touches; "inf" means nothing
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


def response_format() -> dict:
    """The OpenAI-style JSON schema request for a ``Judgement``."""
    return {"type": "json_schema", "json_schema": {"name": "judgement", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["correct", "score", "reason"],
        "properties": {"correct": {"type": "boolean"}, "score": {"type": "number"}, "reason": {"type": "string"}}}}}


async def judge(gateway: Gateway, task: str, answer: str, *, budget: Budget | None = None,
                model: str | None = None, max_tokens: int = 96) -> RoleOutcome[Judgement]:
    """A verdict in at most two calls: the reply is asked for as JSON (constrained to the ``Judgement``
    schema where the provider supports it), and an unusable reply is re-asked once; after that the outcome
    carries no value and its ``failure`` says why (the graph records it as "no verdict")."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(task=task, answer=answer)}]
    schema = response_format() if supports_response_schema(model or gateway.model) else None
    return await ask_structured(gateway, messages, Judgement, role="verifier", budget=budget,
                                max_tokens=max_tokens, temperature=0.0, fallback=_from_words, model=model,
                                response_format=schema)
