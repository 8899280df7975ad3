"""LLM merges and cheatsheets go through the caller's gateway: budgeted, tagged and in its ledger;
``add`` and ``aadd`` take the same path (both honour the bank's ``merge_model``)."""

from __future__ import annotations

import pytest
from seasoned.memory import Action, MemoryBank, MemoryItem
from seasoned.models import Budget, Gateway, Ledger, call_tags, scripted

SEED = "Retry flaky network calls with exponential backoff."
NEWS = "Retry network calls using backoff plus jitter."
MERGED = "Retry flaky network calls with exponential backoff and jitter."


@pytest.fixture
def bank(tmp_path):
    b = MemoryBank.open(f"sqlite:///{tmp_path / 'm.db'}", namespace="gw")
    yield b
    b.close()


def _update_reply(target_id: str) -> str:
    return f'{{"action": "UPDATE", "target_id": "{target_id}", "content": "{MERGED}", "reason": "adds jitter"}}'


def test_a_merge_during_add_is_in_the_given_gateways_ledger_with_the_callers_tags(bank):
    seed = bank.add(MemoryItem(content=SEED)).item
    scripted.register("gw-merge", fn=lambda messages, params: _update_reply(seed.id))
    ledger = Ledger()
    gateway = Gateway("scripted/gw-merge", ledger=ledger)
    try:
        with call_tags(run_id="run-42"):
            result = bank.add(MemoryItem(content=NEWS), model="scripted/gw-merge", gateway=gateway)
    finally:
        scripted.unregister("gw-merge")
    assert result.action is Action.UPDATE and bank.get(seed.id).content == MERGED
    calls = ledger.calls()
    assert len(calls) == 1
    assert calls[0].role == "curator" and calls[0].run_id == "run-42" and calls[0].model == "scripted/gw-merge"
    assert bank.gateway is None  # the caller's gateway was used: the bank built none of its own


async def test_aadd_merges_through_the_given_gateway(bank):
    seed = bank.add(MemoryItem(content=SEED)).item
    scripted.register("gw-amerge", fn=lambda messages, params: _update_reply(seed.id))
    ledger = Ledger()
    try:
        result = await bank.aadd(MemoryItem(content=NEWS), model="scripted/gw-amerge",
                                 gateway=Gateway("scripted/gw-amerge", ledger=ledger))
    finally:
        scripted.unregister("gw-amerge")
    assert result.action is Action.UPDATE
    assert [c.role for c in ledger.calls()] == ["curator"]


def test_sync_add_honours_the_bank_merge_model_through_the_bank_gateway(tmp_path):
    ledger = Ledger()
    bank = MemoryBank.open(f"sqlite:///{tmp_path / 'b.db'}", namespace="gw", merge_model="scripted/gw-bank",
                           gateway=Gateway("scripted/gw-bank", ledger=ledger))
    try:
        seed = bank.add(MemoryItem(content=SEED)).item  # nothing similar yet: no model call
        assert ledger.calls() == []
        scripted.register("gw-bank", fn=lambda messages, params: _update_reply(seed.id))
        result = bank.add(MemoryItem(content=NEWS))
        assert result.action is Action.UPDATE and result.item.content == MERGED
        assert len(ledger.calls()) == 1
    finally:
        scripted.unregister("gw-bank")
        bank.close()


def test_a_spent_budget_stops_the_merge_call_and_the_rule_decides(bank):
    seed = bank.add(MemoryItem(content=SEED)).item
    scripted.register("gw-budget", fn=lambda messages, params: _update_reply(seed.id))
    ledger = Ledger()
    gateway = Gateway("scripted/gw-budget", ledger=ledger, budget=Budget(max_calls=0))
    try:
        result = bank.add(MemoryItem(content=NEWS), model="scripted/gw-budget", gateway=gateway)
    finally:
        scripted.unregister("gw-budget")
    assert "llm merge failed" in result.reason and "deterministic rule" in result.reason
    assert ledger.calls() == [] and bank.get(seed.id).content != MERGED


def test_the_bank_builds_its_default_gateway_once(bank):
    first = bank.merge_gateway(model="scripted/anything")
    assert bank.merge_gateway() is first and bank.gateway is first
    given = Gateway("scripted/anything", ledger=Ledger())
    assert bank.merge_gateway(given) is given


def test_a_cheatsheet_condensed_by_a_model_is_in_the_given_gateways_ledger(bank):
    bank.add(MemoryItem(kind="strategy", title="pairs", content="Pair the numbers before adding them."))
    scripted.register("gw-sheet", replies=["# Cheatsheet\n- pair numbers first"])
    ledger = Ledger()
    try:
        sheet = bank.cheatsheet("add numbers", max_tokens=100, model="scripted/gw-sheet",
                                gateway=Gateway("scripted/gw-sheet", ledger=ledger))
    finally:
        scripted.unregister("gw-sheet")
    assert sheet == "# Cheatsheet\n- pair numbers first"
    assert [c.role for c in ledger.calls()] == ["curator"]
