"""Budgets are hard caps (issue 14): no NaN or negative cap, and a timed-out call is charged what was sent."""

from __future__ import annotations

import asyncio
import math

import pytest
from seasoned.models import Budget, BudgetExceeded, Gateway, Ledger, ModelCallError, RetryPolicy, scripted


@pytest.mark.parametrize("field", ["max_tokens", "max_usd", "max_calls", "max_seconds"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, "10", True, [5]])
def test_non_finite_negative_or_non_numeric_caps_are_refused(field, value):
    with pytest.raises((ValueError, TypeError), match=f"budget {field}"):
        Budget(**{field: value})
    with pytest.raises((ValueError, TypeError), match=f"budget {field}"):
        Budget(max_tokens=100).child(**{field: value})


def test_valid_caps_still_work():
    budget = Budget(max_tokens=0, max_usd=0.5, max_calls=3, max_seconds=1.5)
    assert budget.remaining_tokens() == 0 and budget.remaining_calls() == 3
    assert Budget().remaining_tokens() == math.inf  # None is "no cap"


async def test_a_nan_cap_can_no_longer_let_every_call_through():
    scripted.register("budget-echo", fn=lambda messages, params: "ok")
    gateway = Gateway("scripted/budget-echo", ledger=Ledger())
    with pytest.raises(ValueError):
        Budget(max_tokens=math.nan)
    budget = Budget(max_tokens=30)
    made = 0
    for _ in range(50):
        try:
            await gateway.acomplete("hi", max_tokens=8, budget=budget)
            made += 1
        except BudgetExceeded:
            break
    assert 0 < made < 50 and budget.spent.tokens <= 30


def _gateway(name: str) -> Gateway:
    return Gateway(f"scripted/{name}", ledger=Ledger(), retry=RetryPolicy(max_attempts=1))


async def test_a_timed_out_call_is_charged_its_prompt():
    scripted.register("budget-slow", fn=lambda messages, params: "late", delay=30)
    gateway = _gateway("budget-slow")
    budget = Budget(max_tokens=10_000)
    with pytest.raises(ModelCallError, match="timed out"):
        await gateway.acomplete("a prompt of several words", max_tokens=50, budget=budget, timeout=0.05)
    [record] = gateway.ledger.calls()
    assert record.error and record.prompt_tokens > 0
    assert budget.spent.tokens == record.total_tokens == record.prompt_tokens
    assert budget.reserved.tokens == 0


async def test_a_provider_timeout_is_charged_its_prompt_too():
    scripted.register("budget-timeout", replies=[scripted.timeout()])
    gateway = _gateway("budget-timeout")
    budget = Budget(max_tokens=10_000)
    with pytest.raises(ModelCallError):
        await gateway.acomplete("a prompt of several words", max_tokens=50, budget=budget)
    [record] = gateway.ledger.calls()
    assert record.prompt_tokens > 0 and budget.spent.tokens == record.prompt_tokens


async def test_a_cancelled_call_is_charged_its_prompt():
    scripted.register("budget-cancel", fn=lambda messages, params: "late", delay=30)
    gateway = _gateway("budget-cancel")
    budget = Budget(max_tokens=10_000)
    call = asyncio.ensure_future(gateway.acomplete("a prompt of several words", max_tokens=50, budget=budget))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    [record] = gateway.ledger.calls()
    assert record.error == "cancelled" and record.prompt_tokens > 0
    assert budget.spent.tokens == record.prompt_tokens and budget.reserved.tokens == 0


async def test_a_refused_request_is_not_charged():
    scripted.register("budget-bad", replies=[scripted.bad_request()])
    gateway = _gateway("budget-bad")
    budget = Budget(max_tokens=10_000)
    with pytest.raises(ModelCallError):
        await gateway.acomplete("hi", max_tokens=50, budget=budget)
    assert budget.spent.tokens == 0 and budget.spent.calls == 1
