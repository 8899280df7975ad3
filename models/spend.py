"""``Spend``: what model calls cost, the one type for it.

The budget counts its spent and reserved amounts in it (``tokens``, ``usd``, ``calls``), the ledger and the
run store total calls into it (adding prompt/completion tokens, latency, errors and tokens per role), and a
run's result reports it (with ``seconds``, the run's wall-clock time). ``total_tokens`` and ``cost_usd`` are
the same numbers under the names of a call record and of the OpenAI usage block; they are serialised too, so
readers of either name keep working.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pydantic import BaseModel, Field, computed_field

OTHER_ROLE = "other"  # the ``by_role`` key of calls that carry no role tag


class CallCost(Protocol):
    """What ``Spend.add`` reads from one call (a ledger ``CallRecord`` or a stored ``CallTrace``)."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cost_known: bool
    latency_s: float
    error: str | None
    role: str | None


class Spend(BaseModel):
    """Tokens, USD and calls spent; totals over calls add their details."""

    tokens: int = 0  # all tokens: prompt + completion
    usd: float = 0.0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_known: bool = True  # False when some call's price was unknown (its cost counted as 0)
    latency_s: float = 0.0
    errors: int = 0
    seconds: float = 0.0  # a run's wall-clock time (0 for totals over calls)
    by_role: dict[str, int] = Field(default_factory=dict)  # tokens per role

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> float:
        return self.usd

    def add(self, call: CallCost) -> None:
        """Count one call (fields written in place, as in ``count``: totals run over every call of a run)."""
        tokens = call.prompt_tokens + call.completion_tokens
        fields = self.__dict__
        fields["calls"] += 1
        fields["prompt_tokens"] += call.prompt_tokens
        fields["completion_tokens"] += call.completion_tokens
        fields["tokens"] += tokens
        fields["usd"] += call.cost_usd
        fields["cost_known"] = self.cost_known and call.cost_known
        fields["latency_s"] += call.latency_s
        fields["errors"] += call.error is not None
        role = call.role or OTHER_ROLE
        self.by_role[role] = self.by_role.get(role, 0) + tokens

    def counts(self) -> dict:
        """``tokens``, ``usd`` and ``calls`` as a plain dict: what a budget caps (a graph node's spend)."""
        return {"tokens": self.tokens, "usd": self.usd, "calls": self.calls}

    def count(self, tokens: int, usd: float, calls: int) -> None:
        """Budget arithmetic in place (negative amounts release a reservation). A budget does this under its
        lock on every call, so the fields are written directly, past pydantic's attribute hook (~3 us each)."""
        fields = self.__dict__
        fields["tokens"] += tokens
        fields["usd"] += usd
        fields["calls"] += calls


def total_spend(calls: Iterable[CallCost]) -> Spend:
    """The totals of some calls."""
    spend = Spend()
    for call in calls:
        spend.add(call)
    return spend


__all__ = ["OTHER_ROLE", "CallCost", "Spend", "total_spend"]
