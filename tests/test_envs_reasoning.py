"""arithmetic, game24, wordproblems, humaneval: generators, extraction, verifiers on good and bad answers."""

import pytest

from seasoned.envs import EnvError, get_env, list_envs
from seasoned.envs.answers import last_number
from seasoned.envs.game24 import count_solutions, evaluate


def test_registry_lists_and_refuses_unknown():
    names = {row["name"] for row in list_envs()}
    assert {"arithmetic", "game24", "wordproblems", "humaneval", "swe", "miniwob"} <= names
    with pytest.raises(EnvError, match="unknown environment 'nope'"):
        get_env("nope")


@pytest.mark.parametrize("name", ["arithmetic", "game24", "wordproblems"])
def test_generators_are_seeded_and_ids_regenerate(name):
    env = get_env(name)
    first, again = env.tasks(n=4, seed=3), env.tasks(n=4, seed=3)
    assert [t.prompt for t in first] == [t.prompt for t in again]
    assert [t.prompt for t in env.tasks(n=4, seed=4)] != [t.prompt for t in first]
    for task in first:
        assert env.get_task(task.id).prompt == task.prompt
    with pytest.raises(EnvError, match="has no task"):
        env.get_task("bogus-id")


async def test_arithmetic_verifier():
    env = get_env("arithmetic")
    for task in env.tasks(n=5, seed=1):
        answer = task.metadata["answer"]
        assert (await env.verify(task, f"Working... so the result is\nAnswer: {answer}")).passed
        assert not (await env.verify(task, f"Answer: {int(answer) + 1}")).passed
        assert not (await env.verify(task, "I don't know")).passed


def test_number_extraction():
    assert last_number("3 + 4 = 7, so the answer is 1,204.") == 1204
    assert last_number("\\boxed{-12} and later 5") == -12
    assert last_number("Answer: 7/2") == pytest.approx(3.5)
    assert last_number("nothing here") is None


def test_game24_tasks_are_solvable_and_difficulty_orders_solution_counts():
    env = get_env("game24")
    easy = env.tasks(n=4, difficulty=1)
    hard = env.tasks(n=4, difficulty=3)
    assert all(t.metadata["solutions"] > 0 for t in easy + hard)
    assert min(t.metadata["solutions"] for t in easy) > max(t.metadata["solutions"] for t in hard)
    assert count_solutions((1, 1, 1, 1)) == 0


async def test_game24_verifier_good_and_bad():
    env = get_env("game24")
    task = env.get_task("game24-d1-0")
    task.metadata["numbers"] = [1, 2, 3, 4]
    assert (await env.verify(task, "Try: (1 + 2 + 3) * 4 = 24\nAnswer: (1 + 2 + 3) * 4")).passed
    assert (await env.verify(task, "4 × 3 × 2 × 1 = 24")).passed
    for answer in ("Answer: (1 + 2 + 3) + 4", "Answer: 4 * 6", "Answer: (1 + 2 + 3) * 4 * 1",
                   "Answer: __import__('os').system('true')", "no idea"):
        assert not (await env.verify(task, answer)).passed, answer
    task.metadata["numbers"] = [3, 3, 8, 8]
    assert (await env.verify(task, "Answer: 8 / (3 - 8 / 3)")).passed


def test_game24_parser_refuses_non_arithmetic():
    from seasoned.envs.game24 import ExpressionError

    assert evaluate("(1 + 2) * 8")[0] == 24
    assert evaluate("8 / (3 - 8 / 3)")[0] == 24  # needs exact fractions
    for bad in ("2 ** 5", "abs(-24)", "a + 1", "1.5 * 16", "(1 + 2"):
        with pytest.raises(ExpressionError):
            evaluate(bad)
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("4 / (2 - 2)")


async def test_wordproblems_stages_and_verifier():
    env = get_env("wordproblems")
    task = env.tasks(n=1, difficulty=4)[0]
    assert len(task.stages) == 4 and len(task.metadata["stage_answers"]) == 4
    assert {s.kind for s in task.stages} <= {"multiply", "add", "remove", "percent", "divide", "price"}
    assert task.metadata["stage_answers"][-1] == task.metadata["answer"]
    assert (await env.verify(task, f"Answer: {task.metadata['answer']}")).passed
    assert not (await env.verify(task, f"Answer: {int(task.metadata['answer']) + 3}")).passed
    assert (await env.verify_stage(task, 0, task.metadata["stage_answers"][0])).passed


def _canonical(task_id):
    from seasoned.envs.humaneval import _problems

    env = get_env("humaneval")
    task = env.get_task(task_id)
    return env, task, _problems()[task.metadata["problem_id"]]


async def test_humaneval_canonical_passes_and_wrong_fails():
    env, task, problem = _canonical("humaneval-2")
    assert len(env.tasks()) == 164
    assert (await env.verify(task, problem["canonical_solution"])).passed
    full = f"Here is my solution:\n```python\n{problem['prompt']}{problem['canonical_solution']}```"
    assert (await env.verify(task, full)).passed
    wrong = f"```python\ndef {problem['entry_point']}(number: float) -> float:\n    return number\n```"
    verdict = await env.verify(task, wrong)
    assert not verdict.passed and "AssertionError" in verdict.details["output"]


async def test_humaneval_candidate_runs_in_sandbox_with_time_limit():
    from seasoned.envs.humaneval import HumanEvalEnv

    env = HumanEvalEnv(time_limit=2)
    task = env.get_task("HumanEval/0")
    verdict = await env.verify(task, "```python\ndef has_close_elements(numbers, threshold):\n    while True:\n"
                                     "        pass\n```")
    assert not verdict.passed and verdict.details["stopped"] == "time limit"
