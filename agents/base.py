"""What every role shares: one model call through the gateway, parsed into a pydantic schema, with one
re-ask that shows the model its parse error, then a typed failure the graph can handle. A run never
crashes on model output; only ``BudgetExceeded`` (and configuration errors) propagate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel
from seasoned.models import Budget, Completion, Gateway, ModelCallError

from .parsing import ParseError, parse_model

T = TypeVar("T", bound=BaseModel)

REASK = ("Your reply could not be used: {error}. Reply again with only the JSON object, "
         "no other text.")


@dataclass
class RoleOutcome(Generic[T]):
    """A role's parsed output, or why there is none; ``completions`` are the calls it took."""

    value: T | None = None
    failure: str | None = None
    completions: list[Completion] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.value is not None

    @property
    def tokens(self) -> int:
        return sum(c.total_tokens for c in self.completions)


async def ask_structured(
    gateway: Gateway,
    messages: list[dict],
    schema: type[T],
    *,
    role: str,
    budget: Budget | None = None,
    max_tokens: int = 256,
    temperature: float = 0.2,
    fallback: Callable[[str], T | None] | None = None,
    reask: bool = True,
    model: str | None = None,
    response_format: dict | None = None,
) -> RoleOutcome[T]:
    """Ask for ``schema``; ``fallback(text)`` may salvage a value from text that is not JSON.

    ``response_format`` (an OpenAI-style ``json_schema`` request, for providers that constrain their output
    to it) goes with every attempt; a provider that refuses it is asked again without it."""
    outcome: RoleOutcome[T] = RoleOutcome()
    conversation = list(messages)
    for attempt in range(2 if reask else 1):
        structured = {"response_format": response_format} if response_format else {}
        try:
            reply = await gateway.acomplete(conversation, role=role, budget=budget, max_tokens=max_tokens,
                                            temperature=temperature, model=model, **structured)
        except ModelCallError as exc:
            outcome.failure = f"{role}: model call failed: {exc}"
            if response_format and not exc.transient:  # the schema itself was refused: ask in words
                response_format = None
                continue
            return outcome
        outcome.completions.append(reply)
        try:
            outcome.value = parse_model(reply.text, schema)
            return outcome
        except ParseError as exc:
            salvaged = fallback(reply.text) if fallback else None
            if salvaged is not None:
                outcome.value = salvaged
                return outcome
            outcome.failure = f"{role}: unusable output ({exc})"
            conversation = conversation + [{"role": "assistant", "content": reply.text},
                                           {"role": "user", "content": REASK.format(error=exc)}]
    return outcome
