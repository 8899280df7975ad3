"""Whole runs survive hostile model output (issue 14): an overflowing answer in an addition run, and a
planner whose difficulty is "nan" in a multi-stage run (the allocation failed before)."""

from __future__ import annotations

import math

from seasoned.agents import planner
from seasoned.envs import get_env
from seasoned.graphs import Agent
from seasoned.models import scripted

HUGE = "Answer: 1" + "0" * 400 + ".5"


async def test_an_addition_run_with_an_overflowing_answer_completes(tmp_path):
    scripted.register("sec-huge", fn=lambda messages, params: f"Let me add.\n{HUGE}")
    env = get_env("addition")
    task = env.tasks(n=1, difficulty=2)[0]
    agent = Agent("scripted/sec-huge", strategy="best_of_n-2", db_url=f"sqlite:///{tmp_path}/runs.db",
                  checkpoint=False, curate=False)
    result = await agent.arun(task, env=env)
    assert not result.verified
    assert result.answer == HUGE.removeprefix("Answer: ")  # read exactly, never through a float
    assert agent.store.get_run(result.run_id).run.status == "completed"


def plan_then_answer(messages, params):
    if messages[0]["content"] == planner.SYSTEM:
        return ('{"subtasks": [{"id": "s1", "description": "Add 2 and 3.", "kind": "compute", "difficulty": "nan"},'
                ' {"id": "s2", "description": "Double it.", "kind": "compute", "difficulty": NaN,'
                ' "depends_on": ["s1"]}]}')
    return "Answer: 10"


async def test_a_planner_difficulty_of_nan_still_allocates_the_budget(tmp_path):
    scripted.register("sec-nan-plan", fn=plan_then_answer)
    agent = Agent("scripted/sec-nan-plan", strategy="single", plan=True, allocation="difficulty",
                  budget={"max_tokens": 4000}, db_url=f"sqlite:///{tmp_path}/runs.db", checkpoint=False,
                  curate=False)
    result = await agent.arun("Add 2 and 3, then double the result.")
    assert result.answer == "10"
    trace = agent.store.get_run(result.run_id)
    assert trace.run.status == "completed" and len(trace.subtasks) == 2
    for subtask in trace.subtasks:
        assert subtask.difficulty == 0.5
        tokens = (subtask.allocation or {}).get("tokens")
        assert tokens is not None and math.isfinite(tokens) and tokens > 0
