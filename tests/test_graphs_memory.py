"""The solve graph with an experience memory: retrieved items reach the solver, outcomes reach the items."""

import pytest

from seasoned.graphs import Agent, parse_strategy
from seasoned.memory import MemoryBank, MemoryItem
from seasoned.models import Gateway, Ledger, scripted


@pytest.fixture
def bank(tmp_path):
    bank = MemoryBank.open(f"sqlite:///{tmp_path}/mem.db", namespace="math", chroma_path=str(tmp_path / "chroma"))
    bank.add(MemoryItem(kind="strategy", title="Adding two-digit numbers",
                        content="Add the tens, then the ones, then combine: 40 + 2 = 42."), actor="human")
    yield bank
    bank.close()


def agent_with(bank, tmp_path, name, reply, strategy="self_consistency-2", channel="notes"):
    model = scripted.register(name, fn=reply)
    agent = Agent(gateway=Gateway(f"scripted/{name}", ledger=Ledger()), memory=bank, namespace="math",
                  strategy=parse_strategy(strategy, seed=0), db_url=f"sqlite:///{tmp_path}/runs.db",
                  memory_channel=channel)
    return agent, model


def test_retrieved_items_reach_the_solver_prompt_and_are_recorded(bank, tmp_path):
    agent, model = agent_with(bank, tmp_path, "mem-solver", lambda messages, params: "Answer: 42")
    result = agent.run("What is 40 + 2?")
    assert result.memory_ids
    system = model.seen[0][0][0]["content"]  # distilled notes travel in the system message
    assert "Add the tens, then the ones" in system
    events = agent.store.get_run(result.run_id).events
    assert any(e.kind == "memory" and e.data["ids"] == result.memory_ids for e in events)


def test_an_environment_check_credits_the_items_at_once(bank, tmp_path):
    from types import SimpleNamespace

    async def check(text):
        return SimpleNamespace(passed=text.endswith("42"), reward=1.0, details="")

    agent, _ = agent_with(bank, tmp_path, "mem-env", lambda messages, params: "Answer: 42", "adaptive-4")
    result = agent.run("What is 40 + 2?", checker=check)
    assert result.verified
    item = bank.get(result.memory_ids[0], namespace="math")
    assert item.times_succeeded == 1


def test_feedback_later_credits_items_and_the_accepting_verifier(bank, tmp_path):
    agent, _ = agent_with(bank, tmp_path, "mem-feedback", lambda messages, params: "Answer: 42", "adaptive-8")
    result = agent.run("What is 40 + 2?")
    assert result.verified and result.verified_by == "agreement"
    item_id = result.memory_ids[0]
    assert bank.get(item_id, namespace="math").times_failed == 0
    precision_before = agent.stats.precision("math", "agreement")
    report = agent.feedback(result.run_id, success=False, comment="the user says it was wrong")
    assert report["memory_items_credited"] == [item_id]
    assert bank.get(item_id, namespace="math").times_failed == 1
    assert agent.stats.precision("math", "agreement") < precision_before
    trace = agent.store.get_run(result.run_id)
    assert trace.feedback and trace.feedback[-1].success is False
