"""Allocation never hands a subtask less than one call can use: the allocation is raised to one call's
need, or the subtask is skipped with the reason when the run cannot pay for it (scripted provider)."""

from dataclasses import replace

import pytest
from seasoned.graphs.allocation import Learned
from test_graphs_task import ChainEnv, agent_for, chain_solver


class SkewedChain(ChainEnv):
    """The chain with one trivial stage and two hard ones: a difficulty split starves the trivial one."""

    def get_task(self, task_id):
        task = super().get_task(task_id)
        difficulties = [0.01, 1.0, 1.0]
        return replace(task, stages=[replace(s, difficulty=d) for s, d in zip(task.stages, difficulties, strict=True)])


def test_a_starved_subtask_gets_one_call(tmp_path):
    env = SkewedChain()
    agent = agent_for("floor", chain_solver(), tmp_path, allocation="difficulty", strategy="single")
    result = agent.run(env.get_task("chain-1"), env=env, budget={"max_tokens": 300})
    first = result.subtasks[0]
    decision = next(d for d in result.decisions if d.get("action") == "allocate")
    assert decision["allocations"]["s1"]["tokens"] < first["result"]["allocated"]  # the policy's share was raised
    assert first["result"]["calls"] >= 1 and first["result"]["verified"]


def test_a_subtask_the_run_cannot_pay_for_is_skipped_with_the_reason(tmp_path):
    env = SkewedChain()
    agent = agent_for("floor-tight", chain_solver(), tmp_path, allocation="uniform", strategy="single")
    result = agent.run(env.get_task("chain-1"), env=env, budget={"max_tokens": 90})
    skipped = [s for s in result.subtasks if (s["result"] or {}).get("given_up")]
    assert skipped, result.subtasks
    assert all("one call needs" in s["result"]["stop_reason"] and s["result"]["tokens"] == 0 for s in skipped)


def cheap_sample_records() -> list[dict]:
    """Earlier runs in which every stage succeeded on its first sample for about one token: the learned
    prior's cap (samples x tokens per sample) is far below what one real call on the chain needs."""
    return [{"subtask_kind": kind, "samples": 1, "success": True, "spent": {"tokens": 1},
             "budget": {"tokens": 100}, "run_ids": [f"earlier-{i}"]} for i in range(8) for kind in ("add", "double")]


@pytest.mark.parametrize("policy", ["learned", "learned-with-records"])
def test_the_learned_policy_never_starves_a_subtask_either(tmp_path, policy):
    env = SkewedChain()  # no records: exploring shares, the trivial stage's is tiny; records: tiny learned caps
    allocation = Learned(cheap_sample_records) if policy == "learned-with-records" else "learned"
    agent = agent_for(f"floor-{policy}", chain_solver(), tmp_path, allocation=allocation, strategy="single")
    result = agent.run(env.get_task("chain-1"), env=env, budget={"max_tokens": 300})
    decided = {sid: a["tokens"] for d in result.decisions if d.get("action") == "allocate"
               for sid, a in d["allocations"].items()}
    assert all(d["policy"] == "learned" for d in result.decisions if d.get("action") == "allocate")
    raised = [s for s in result.subtasks if decided[s["id"]] < s["result"]["allocated"]]
    assert raised, (decided, result.subtasks)  # the policy's share was below one call, and was raised
    for subtask in result.subtasks:
        assert subtask["result"]["calls"] >= 1 and subtask["result"]["verified"], subtask["result"]
        assert subtask["result"]["tokens"] <= subtask["result"]["allocated"]
    assert result.verified
