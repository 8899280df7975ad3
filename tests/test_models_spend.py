"""One ``Spend``: the budget's counts, the ledger's totals and a run's spend are the same type, and both
names of a total (``tokens``/``total_tokens``, ``usd``/``cost_usd``) read and serialise the same numbers."""

from __future__ import annotations

from seasoned.models import Budget, CallRecord, Ledger, Spend


def test_ledger_totals_are_a_spend_with_both_names_and_tokens_per_role():
    ledger = Ledger()
    ledger.record(CallRecord(model="m", prompt_tokens=10, completion_tokens=5, cost_usd=0.25, role="solver",
                             run_id="r"))
    ledger.record(CallRecord(model="m", prompt_tokens=3, completion_tokens=1, cost_usd=0.0, cost_known=False,
                             error="boom", run_id="r"))
    totals = ledger.totals(run_id="r")
    assert isinstance(totals, Spend)
    assert (totals.calls, totals.tokens, totals.total_tokens, totals.prompt_tokens) == (2, 19, 19, 13)
    assert totals.usd == totals.cost_usd == 0.25 and not totals.cost_known and totals.errors == 1
    assert totals.by_role == {"solver": 15, "other": 4}
    dumped = totals.model_dump()
    assert dumped["tokens"] == dumped["total_tokens"] == 19 and dumped["usd"] == dumped["cost_usd"] == 0.25
    assert Spend.model_validate(dumped) == totals  # the aliases are read back as nothing more


def test_a_budget_counts_in_a_spend():
    budget = Budget(max_tokens=100)
    held = budget.reserve(40, usd=0.5)
    assert budget.reserved.counts() == {"tokens": 40, "usd": 0.5, "calls": 1}
    budget.settle(held, 25, usd=0.2)
    assert budget.reserved.counts() == {"tokens": 0, "usd": 0.0, "calls": 0}
    assert isinstance(budget.spent, Spend) and budget.spent.counts() == {"tokens": 25, "usd": 0.2, "calls": 1}
    assert budget.remaining_tokens() == 75
