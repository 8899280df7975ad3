"""The functions the CLI wires: list environments, run an environment's tasks with a model."""

import pytest
from seasoned.agents.episodes import arun_environment
from seasoned.envs import EnvError
from seasoned.envs.registry import list_environments
from seasoned.models import scripted


def test_list_environments_prints_one_line_each():
    lines = []
    rows = list_environments(out=lines.append)
    assert len(lines) == len(rows) >= 6 and any(line.startswith("swe ") for line in lines)


async def test_run_prints_reward_and_spend_per_task():
    scripted.register("cli-arith", fn=lambda messages, params: "Answer: 4")
    lines = []
    rows = await arun_environment("arithmetic", model="scripted/cli-arith", n=2, out=lines.append)
    assert [r["task"] for r in rows] == ["arithmetic-d1-0", "arithmetic-d2-1"]
    assert rows[0]["passed"] and rows[0]["reward"] == 1.0  # 2 - (3 - 5) = 4
    assert not rows[1]["passed"] and rows[1]["tokens"] > 0
    assert "reward 1.00" in lines[1] and "tokens" in lines[1] and lines[-1].startswith("total: 1/2 passed")


async def test_run_one_task_and_bad_input():
    scripted.register("cli-one", fn=lambda messages, params: "Answer: 0")
    rows = await arun_environment("game24", model="scripted/cli-one", task_id="game24-d2-5", out=lambda _: None)
    assert len(rows) == 1 and rows[0]["task"] == "game24-d2-5"
    with pytest.raises(EnvError, match="unknown environment"):
        await arun_environment("nope", model="scripted/cli-one", out=lambda _: None)
    with pytest.raises(EnvError, match="has no task"):
        await arun_environment("game24", model="scripted/cli-one", task_id="x", out=lambda _: None)
