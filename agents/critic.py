"""The critic role: says what is wrong with a candidate so that the solver can revise it."""

from __future__ import annotations

from pydantic import BaseModel, Field
from seasoned.models import Budget, Gateway

from .base import RoleOutcome, ask_structured

SYSTEM = "You review solutions and point out mistakes precisely. You reply with JSON only."
PROMPT = """Task:
{task}

Attempt:
{attempt}
{feedback}
List the mistakes in the attempt and how to fix them. Reply with JSON only:
{{"issues": ["..."], "suggestion": "what to do differently"}}"""


class Critique(BaseModel):
    issues: list[str] = Field(default_factory=list)
    suggestion: str = ""

    def as_text(self) -> str:
        lines = [f"- {issue}" for issue in self.issues if str(issue).strip()]
        if self.suggestion:
            lines.append(f"Suggestion: {self.suggestion}")
        return "\n".join(lines) or "The previous attempt was not accepted."


def _from_prose(text: str) -> Critique | None:
    """A critique needs no structure to be useful: prose becomes the suggestion."""
    text = text.strip()
    return Critique(suggestion=text[:1000]) if text else None


async def critique(gateway: Gateway, task: str, attempt: str, *, feedback: str = "",
                   budget: Budget | None = None, max_tokens: int = 160) -> RoleOutcome[Critique]:
    """``feedback`` is what a verifier said (e.g. failing test output), shown to the critic."""
    extra = f"\nVerifier feedback:\n{feedback}\n" if feedback else ""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(task=task, attempt=attempt, feedback=extra)}]
    return await ask_structured(gateway, messages, Critique, role="critic", budget=budget,
                                max_tokens=max_tokens, temperature=0.3, fallback=_from_prose)
