"""The addition and sums environments: seeded tasks, stage checks, the aggregated answer."""

from seasoned.envs import get_env


async def test_addition_checks_the_exact_sum():
    env = get_env("addition")
    task = env.tasks(n=1, seed=3, difficulty=2)[0]
    a, b = task.metadata["a"], task.metadata["b"]
    assert 10 <= a <= 99 and 10 <= b <= 99
    assert (await env.verify(task, f"so... Answer: {a + b}")).passed
    assert not (await env.verify(task, f"Answer: {a + b + 1}")).passed
    assert env.get_task(task.id).prompt == task.prompt


async def test_sums_stages_are_independent_and_all_must_be_right():
    env = get_env("sums")
    task = env.tasks(n=1, seed=1, difficulty=3)[0]
    answers = task.metadata["stage_answers"]
    assert len(task.stages) == 3 and all(s.kind.startswith("add") for s in task.stages)
    assert all(0 <= s.difficulty <= 1 for s in task.stages)
    assert (await env.verify_stage(task, 1, f"Answer: {answers[1]}")).passed
    assert not (await env.verify_stage(task, 1, "Answer: -1")).passed
    full = "\n".join(f"Answer: {a}" for a in answers)
    assert (await env.verify(task, full)).passed
    partial = await env.verify(task, "\n".join(f"Answer: {a}" for a in answers[:-1] + ["0"]))
    assert not partial.passed and partial.reward == 2 / 3
