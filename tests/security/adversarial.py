"""Adversarial model outputs from a seeded generator, and every parser and role that reads model output.

Shared by ``test_parsers.py`` (which asserts that only the typed parse errors escape) and
``benchmarks/parser_fuzz.py`` (which reports the time per call). The pieces are what broke parsers before:
JSON nested thousands deep, numbers that overflow a float, runs of one character that make a backtracking
regex quadratic, wrong JSON types where a role expects a field, tool calls of any shape.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seasoned.agents import critic, curator, parsing, planner, solver, verifier
from seasoned.envs import answers as env_answers
from seasoned.envs import get_env
from seasoned.envs.game24 import ExpressionError, evaluate
from seasoned.errors import ToolError
from seasoned.memory import MemoryItem
from seasoned.memory.merge import parse_llm_decision
from seasoned.models import Completion, untrusted
from seasoned.tools.actions import Param, ToolSpec, parse_edit_body, parse_text_action, parse_tool_call

SIZES = (1, 3, 10, 100, 300)
LARGE = (1000, 5000)  # 10% and 1% of runs: the long inputs (and BIG) are what made parsers stall
BIG = 60_000  # a few outputs are this long: quadratic parsing shows up as seconds, linear as milliseconds

RUNS = [" ", "\n", "\t", "<", "=", ">", "`", "{", "[", "}", "]", "'", '"', ",", "*", "\\", "0", "1,", ". ",
        "answer", "Answer: ", "answer is ", "final answer", ":", "-", "/", "(", ")", "1+", "x", "e", "\u00a0",
        "\ud800", "\x00", "SEARCH", "=======\n", "```", "```json\n", "{\"a\":", "[1,", "\\boxed{"]
NUMBERS = ["1e400.5", "1" + "0" * 400 + ".5", "9" * 5000, "-1e99999", "1/0", "NaN", "Infinity", "-Infinity",
           "1e-400", "0.1", "7/3", "1,234,567", "1e308", "2e308", "-0", "1_000", ".5", "5.", "0x1F", "1e+999999999"]
SNIPPETS = [
    '{"subtasks": [{"id": "s1", "description": "add", "kind": "compute", "difficulty": "nan", "depends_on": []}]}',
    '{"subtasks": [{"id": 1, "description": ["x"], "difficulty": 1e999, "depends_on": "s0"}]}',
    '{"subtasks": "none"}', '{"subtasks": [null, 3, {"description": ""}]}',
    '{"correct": "yes", "score": "nan", "reason": 5}', '{"correct": [1], "score": 1e999}',
    '{"score": "-inf"}', '{"issues": {"a": 1}, "suggestion": null}', '{"issues": ["x", 2, null]}',
    '{"items": [{"kind": "strategy", "title": 1, "content": "use small steps always"}]}',
    '{"items": "x"}', "{'subtasks': [{'id': 's1', 'description': 'x', 'difficulty': True,}],}",
    "<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE", "```action\nview a.py 1 9999999999999999999999\n```",
    '```action\n{"name": "view", "arguments": "[1, 2]"}\n```', '{"name": "view", "arguments": {"path": 1e999}}',
    "```bash\nrm -rf /\n```", "Answer: (1 + 2 + 3) * 4", "Answer: 8 / (3 - 8 / 3)", "4 × 3 × 2 × 1 = 24",
    "The answer is: Answer: 42", "\\boxed{42}", "Answer: **42**", "edit a.py\n<<<<<<< SEARCH\n",
    "key: value\nscore: 0.9\ncorrect: true", "difficulty = nan", "Answer: 1" + "0" * 400 + ".5",
]


def _run(r: random.Random, big: float) -> str:
    roll = r.random()
    size = BIG if roll < big else LARGE[1] if roll < 0.01 + big else LARGE[0] if roll < 0.11 else r.choice(SIZES)
    return r.choice(RUNS) * max(1, size // 4 if size == BIG else size)


def _nested(r: random.Random, big: float) -> str:
    roll = r.random()
    depth = 100_000 if roll < big * 5 else 5000 if roll < 0.02 else r.choice((40, 100, 300, 1000))
    opener, closer = r.choice([("{\"a\": ", "}"), ("[", "]"), ("{\"subtasks\": [", "]}"), ("{", "")])
    return opener * depth + r.choice(["1", "null", "\"x\"", ""]) + (closer * depth if r.random() < 0.7 else "")


def adversarial_text(r: random.Random, big: float = 0.01) -> str:
    """One generated model output: 1-4 pieces (runs, nesting, numbers, snippets, random characters);
    ``big`` is the share of runs BIG characters long (nesting 100,000 deep: five times that)."""
    pieces = []
    for _ in range(r.randint(1, 4)):
        kind = r.random()
        if kind < 0.3:
            pieces.append(_run(r, big))
        elif kind < 0.45:
            pieces.append(_nested(r, big))
        elif kind < 0.6:
            pieces.append(f"Answer: {r.choice(NUMBERS)}" if r.random() < 0.6 else r.choice(NUMBERS))
        elif kind < 0.85:
            pieces.append(r.choice(SNIPPETS))
        else:
            pieces.append("".join(chr(r.choice((r.randint(0, 0x7f), r.randint(0, 0x2fff), 0xd800, 0xdfff)))
                                  for _ in range(r.randint(1, 64))))
    return r.choice(["", "\n", " "]).join(pieces)


def adversarial_tool_call(r: random.Random, text: str) -> Any:
    """A tool call of any shape: most look like OpenAI's, with wrong types and bad argument JSON."""
    arguments = r.choice([text, json.dumps(text), "[1, 2]", "1", "null", '{"path": 1e999}', '{"line": "1e400"}',
                          {"path": ["x"]}, [1], 5, None, '{"path": "a.py", "start": 1, "end": ' + "9" * 50 + "}"])
    name = r.choice(["view", "bash", "submit", ["view"], {"x": 1}, 3, None, text[:20]])
    function = r.choice([{"name": name, "arguments": arguments}, [name], "view", None, {"name": name}])
    shapes = [{"id": "c1", "type": "function", "function": function}, {"name": name, "arguments": arguments},
              [function], text, None, 7, {"function": function, "id": ["x"]}]
    return r.choice(shapes)


TOOLS = [ToolSpec("view", "show a file", (Param("path", "file"), Param("start", "line", "integer", required=False),
                                          Param("end", "line", "integer", required=False))),
         ToolSpec("bash", "run a command", (Param("command", "shell command", rest=True),)),
         ToolSpec("edit", "edit a file", (Param("path", "file"), Param("old", "old"), Param("new", "new")),
                  parse_body=parse_edit_body),
         ToolSpec("submit", "finish")]


MERGE_NEW = MemoryItem(id="new", kind="lesson", content="Check the divisor before dividing.")
MERGE_CANDIDATES = [(MemoryItem(id="old", kind="lesson", content="Never divide by zero."), 0.9)]


class FakeGateway:
    """Answers every call with the same text: the roles' own code runs, with no model in between."""

    model = "scripted/adversary"

    def __init__(self) -> None:
        self.text = ""

    async def acomplete(self, messages, **kwargs) -> Completion:
        return Completion(text=self.text, model=self.model, prompt_tokens=1, completion_tokens=1)


@dataclass
class Target:
    name: str
    call: Callable[[str], Any]  # sync; roles and env verifiers are run to completion inside
    allowed: tuple[type[BaseException], ...] = ()


@dataclass
class Report:
    calls: int = 0
    escaped: list[tuple[str, str, str]] = field(default_factory=list)  # (target, error, text head)
    slowest: dict[str, float] = field(default_factory=dict)

    @property
    def max_seconds(self) -> float:
        return max(self.slowest.values(), default=0.0)


def targets(loop: asyncio.AbstractEventLoop) -> list[Target]:
    """Every parser and role that reads model output, with the typed errors each may raise."""
    gateway = FakeGateway()
    envs = {name: get_env(name) for name in ("addition", "arithmetic", "sums", "wordproblems", "game24")}
    tasks = {name: env.tasks(n=1, difficulty=None)[0] for name, env in envs.items()}
    humaneval = get_env("humaneval")

    def role(coroutine_of: Callable[[], Any]) -> Callable[[str], Any]:
        def call(text: str) -> Any:
            gateway.text = text
            return loop.run_until_complete(coroutine_of())
        return call

    found = [
        Target("parsing.extract_json", parsing.extract_json, (parsing.ParseError,)),
        Target("parsing.key_values", parsing.key_values),
        Target("parsing.parse_model[Plan]", lambda t: parsing.parse_model(t, planner.Plan), (parsing.ParseError,)),
        Target("parsing.parse_model[Critique]", lambda t: parsing.parse_model(t, critic.Critique),
               (parsing.ParseError,)),
        Target("parsing.parse_model[Judgement]", lambda t: parsing.parse_model(t, verifier.Judgement),
               (parsing.ParseError,)),
        Target("parsing.parse_model[Proposal]", lambda t: parsing.parse_model(t, curator.Proposal),
               (parsing.ParseError,)),
        Target("role planner.make_plan", role(lambda: planner.make_plan(gateway, "task"))),
        Target("role critic.critique", role(lambda: critic.critique(gateway, "task", "attempt"))),
        Target("role verifier.judge", role(lambda: verifier.judge(gateway, "task", "answer"))),
        Target("role curator.propose", role(lambda: curator.propose(gateway, {"task": "t", "subtasks": []}))),
        Target("solver.extract_answer", solver.extract_answer),
        Target("solver.normalize_answer", lambda t: solver.normalize_answer(solver.extract_answer(t))),
        Target("solver.normalize_answer(raw)", solver.normalize_answer),
        Target("answers.last_number", env_answers.last_number),
        Target("answers.parse_number", env_answers.parse_number),
        Target("answers.code_blocks", env_answers.code_blocks),
        Target("game24.evaluate", evaluate, (ExpressionError,)),
        Target("humaneval.extract_answer", humaneval.extract_answer),
        Target("actions.parse_text_action", lambda t: parse_text_action(t, TOOLS), (ToolError,)),
        Target("actions.parse_edit_body", parse_edit_body, (ToolError,)),
        Target("untrusted.loads", untrusted.loads, (ValueError,)),
        Target("untrusted.object_spans", untrusted.object_spans),
        Target("merge.parse_llm_decision", lambda t: parse_llm_decision(t, MERGE_NEW, MERGE_CANDIDATES)),
    ]
    for name, env in envs.items():
        found.append(Target(f"{name}.extract_answer", env.extract_answer))
        found.append(Target(f"{name}.verify", lambda t, env=env, task=tasks[name]:
                            loop.run_until_complete(env.verify(task, t))))
    return found


def fuzz(count: int = 10_000, seed: int = 14, *, big: float = 0.01,
         on_call: Callable[[str, float], None] | None = None) -> Report:
    """Feed ``count`` generated outputs to every target (and as many tool calls to ``parse_tool_call``)."""
    r = random.Random(seed)
    loop = asyncio.new_event_loop()
    report = Report()
    try:
        all_targets = targets(loop)
        tool_call = Target("actions.parse_tool_call", lambda call: parse_tool_call(call, TOOLS), (ToolError,))
        for _ in range(count):
            text = adversarial_text(r, big)
            call = adversarial_tool_call(r, text)
            for target, value in [(t, text) for t in all_targets] + [(tool_call, call)]:
                started = time.perf_counter()
                try:
                    target.call(value)
                except target.allowed:
                    pass
                except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
                    head = (value if isinstance(value, str) else repr(value))[:80]
                    report.escaped.append((target.name, f"{type(exc).__name__}: {str(exc)[:120]}", head))
                elapsed = time.perf_counter() - started
                report.calls += 1
                if elapsed > report.slowest.get(target.name, 0.0):
                    report.slowest[target.name] = elapsed
                if on_call is not None:
                    on_call(target.name, elapsed)
    finally:
        loop.close()
    return report
