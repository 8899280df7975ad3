"""Allocation never hands a subtask less than one call can use: the allocation is raised to one call's
need, or the subtask is skipped with the reason when the run cannot pay for it (scripted provider)."""

from dataclasses import replace

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
