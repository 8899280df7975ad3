"""Model output cannot crash or stall a parser (issue 14): each attack that broke one, then a seeded fuzz.

Stalls are caught with a watchdog far above the real cost (a linear parse of these inputs takes
milliseconds; the quadratic ones took minutes), so the tests cannot flake on a slow machine. Per-call
times are reported by ``benchmarks/parser_fuzz.py``.
"""

from __future__ import annotations

import json
import signal
from contextlib import contextmanager
from fractions import Fraction

import pytest
from seasoned.agents import critic, curator, parsing, planner, solver, verifier
from seasoned.envs import get_env
from seasoned.envs.answers import format_number, last_number, parse_number
from seasoned.envs.game24 import MAX_EXPRESSION_CHARS, ExpressionError, evaluate
from seasoned.errors import ToolError
from seasoned.models import untrusted
from seasoned.tools.actions import parse_edit_body, parse_text_action, parse_tool_call

from .adversarial import TOOLS, fuzz

DEEP = 100_000
HUGE = "1" + "0" * 400 + ".5"


@contextmanager
def watchdog(seconds: int = 60):
    """Fail (instead of hanging the suite) if the block runs for minutes: a stall, not slowness."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s: a parser stalled")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --- JSON nested deep: RecursionError before ---------------------------------------------------------
@pytest.mark.parametrize("deep", ["{\"a\": " * DEEP + "1" + "}" * DEEP, "[" * DEEP, "{\"subtasks\": " + "[" * DEEP])
def test_deep_json_is_a_parse_error_in_every_schema(deep):
    with pytest.raises(parsing.ParseError):
        parsing.extract_json(deep)
    for schema in (planner.Plan, critic.Critique, verifier.Judgement, curator.Proposal):
        with pytest.raises(parsing.ParseError):
            parsing.parse_model(deep, schema)
    with pytest.raises(untrusted.UntrustedInputError, match="nested more than"):
        untrusted.loads(deep)


# --- issue 22 row 19: the memory merge decision nested 1000+ deep: RecursionError before --------------
DEEP_SHAPES = {"objects": "{\"a\": " * 2000 + "1" + "}" * 2000, "arrays": "{\"action\": " + "[" * 2000 + "]" * 2000 + "}",
               "mixed": "{\"x\": [" * 1000 + "0" + "]}" * 1000, "unclosed": "{\"a\": " * 100_000,
               "in prose": "I decide: " + "{\"a\": " * 1200 + "{}" + "}" * 1200 + " done."}


@pytest.mark.parametrize("shape", list(DEEP_SHAPES))
def test_a_merge_decision_nested_thousands_deep_is_unparseable_not_a_crash(shape):
    from seasoned.memory.merge import parse_llm_decision

    from .adversarial import MERGE_CANDIDATES, MERGE_NEW

    deep = DEEP_SHAPES[shape]
    with watchdog():
        assert parse_llm_decision(deep, MERGE_NEW, MERGE_CANDIDATES) is None  # the caller applies the rule
        with pytest.raises(parsing.ParseError):
            parsing.extract_json(deep)
        with pytest.raises(parsing.ParseError):
            parsing.parse_model(deep, curator.Proposal)
        with pytest.raises(untrusted.UntrustedInputError):
            untrusted.loads(deep)
        untrusted.object_spans(deep)  # returns, whatever it finds
    good = '{"action": "NOOP", "target_id": "old", "reason": "same"} ' + deep  # a decision, then deep JSON
    assert parse_llm_decision(good, MERGE_NEW, MERGE_CANDIDATES).action == "NOOP"


def test_parsed_trees_thousands_deep_are_checked_without_recursion():
    tree: list = []
    for _ in range(100_000):  # what a lenient provider could hand over already parsed
        tree = [tree]
    with pytest.raises(untrusted.UntrustedInputError, match="nested more than"):
        untrusted.check_tree(tree)
    assert untrusted.finite_or_none({"a": [float("nan"), [float("inf")], 1.5]}) == {"a": [None, [None], 1.5]}
    flat = untrusted.finite_or_none(tree)  # copies iteratively, at any depth
    assert isinstance(flat, list)


def test_json_depth_limit_ignores_brackets_inside_strings():
    text = json.dumps({"text": "[" * 10_000, "quote": "\\\"[{" * 100})
    assert untrusted.loads(text)["text"] == "[" * 10_000
    assert untrusted.json_depth("[[\"]]]]\"]]") == 2


def test_shallow_json_still_parses_leniently():
    value = parsing.parse_model("Sure! ```json\n{'subtasks': [{'id': 's1', 'description': 'add', 'difficulty': 2,}],}\n```",
                                planner.Plan)
    assert value.subtasks[0].description == "add" and value.subtasks[0].difficulty == 0.2


# --- tool calls: TypeError before ---------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    None, 7, "view", [{"name": "view"}], {"function": ["view"]}, {"function": {"name": ["view"]}},
    {"function": {"name": "view", "arguments": "[1, 2]"}}, {"function": {"name": "view", "arguments": [1]}},
    {"function": {"name": "view", "arguments": "1"}}, {"function": {"name": "view", "arguments": 5}},
    {"function": {"name": "view", "arguments": "{\"path\": " * DEEP}},
    {"function": {"name": "view", "arguments": '{"path": "a", "start": 1e999}'}},
    {"function": {"name": "view", "arguments": {"path": "a", "start": float("inf")}}},
    {"function": {"name": "view", "arguments": {1: "a"}}},
    {"function": {"name": {"x": 1}, "arguments": "{}"}},
])
def test_malformed_tool_calls_are_tool_errors(call):
    with pytest.raises(ToolError):
        parse_tool_call(call, TOOLS)


def test_a_good_tool_call_still_parses():
    action = parse_tool_call({"id": "c1", "function": {"name": "view", "arguments": '{"path": "a.py", "start": 3}'}},
                             TOOLS)
    assert (action.name, action.args, action.call_id) == ("view", {"path": "a.py", "start": 3}, "c1")


def test_text_actions_with_deep_json_or_brace_runs_do_not_stall():
    with watchdog():
        for text in ["{" * 200_000, "{\"name\": \"view\", \"arguments\": " * 50_000 + "}",
                     "```action\n" + "[" * DEEP + "\n```"]:
            with pytest.raises(ToolError):
                parse_text_action(text, TOOLS)


def test_edit_body_with_thousands_of_dividers_does_not_stall():
    with watchdog():  # 4,000 divider lines took 29 s with the old regex; 100,000 would take hours
        with pytest.raises(ToolError):
            parse_edit_body("a.py\n<<<<<<< SEARCH\n" + "=======\n" * 100_000)
        assert parse_edit_body("a.py\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE") == \
            {"path": "a.py", "old": "old", "new": "new"}


# --- numbers that overflow a float: OverflowError before ----------------------------------------------
@pytest.mark.parametrize("name", ["addition", "arithmetic", "sums", "wordproblems"])
@pytest.mark.parametrize("reply", [f"Answer: {HUGE}", "Answer: 1e400.5", "Answer: " + "9" * 5000,
                                   "Answer: 1e400", "Answer: " + "7" * 900 + "/3"])
async def test_numeric_environments_reject_huge_numbers_without_crashing(name, reply):
    env = get_env(name)
    task = env.tasks(n=1)[0]
    verdict = await env.verify(task, reply)
    assert not verdict.passed
    env.extract_answer(reply)


def test_huge_numbers_keep_their_exact_form():
    value = parse_number(HUGE)
    assert value == Fraction(2 * 10**400 + 1, 2)
    assert format_number(value) == HUGE  # exact, no float in between
    assert format_number(Fraction(10**400, 3)) == f"{10**400}/3"
    assert parse_number("1e400.5") is None and parse_number("9" * 5000) is None
    assert last_number(f"Answer: {HUGE}") == value
    assert format_number(Fraction(7, 2)) == "3.5" and format_number(Fraction(1, 10)) == "0.1"


def test_normalize_answer_keeps_huge_answers_apart():
    assert solver.normalize_answer(HUGE) != solver.normalize_answer("1" + "0" * 400 + ".25")
    assert solver.normalize_answer("1e400.5") == "1e400.5"
    assert solver.normalize_answer(" 1,234. ") == "1234" and solver.normalize_answer("0.50") == "0.5"


# --- quadratic regexes: 10 s at 20,000 spaces before --------------------------------------------------
@pytest.mark.parametrize("text", ["answer" + " " * 200_000 + "x", ("answer" + " " * 50) * 4000,
                                  "final" + " " * 200_000 + "answer", "Answer:" + " " * 200_000,
                                  "key" + " " * 200_000 + "x", "\n" * 200_000 + "a: b"])
def test_answer_and_key_value_regexes_are_linear(text):
    with watchdog():
        solver.extract_answer(text)
        parsing.key_values(text)
        get_env("sums")._answers(text)
        last_number(text)


def test_extract_answer_reads_nested_answer_prefixes():  # issue 17
    assert solver.extract_answer("The answer is: Answer: 42") == "42"
    assert solver.extract_answer("Final answer: answer is: 7") == "7"
    assert solver.extract_answer("work...\nAnswer: **42**") == "42"
    assert solver.extract_answer("Answer: 1\nAnswer: 2") == "2"
    assert solver.normalize_answer(solver.extract_answer("The answer is: Answer: 42")) == "42"


# --- game24: RecursionError on '1+' * 1000 before -----------------------------------------------------
@pytest.mark.parametrize("expression", ["1+" * 1000 + "1", "(" * 1000 + "1" + ")" * 1000, "1+" * 100_000,
                                        "-" * 5000 + "24", "1" * 5000 + "+2"])
def test_game24_checker_refuses_oversized_expressions(expression):
    with pytest.raises(ExpressionError):
        evaluate(expression)


async def test_game24_verify_survives_oversized_answers():
    env = get_env("game24")
    task = env.tasks(n=1)[0]
    for answer in ["Answer: " + "1+" * 1000 + "1", "(" * 100_000, "Answer: " + "(1+2)*" * 10_000 + "8"]:
        assert not (await env.verify(task, answer)).passed
    assert evaluate("(1 + 2) * " + "(" * 20 + "8" + ")" * 20)[0] == 24
    assert len("(1 + 2) * " + "(" * 20 + "8" + ")" * 20) < MAX_EXPRESSION_CHARS


# --- planner difficulty "nan": allocation failed before -----------------------------------------------
@pytest.mark.parametrize("value", ["nan", "NaN", float("nan"), "inf", float("-inf"), 10**400, "1e999", [0.3], True])
def test_planner_difficulty_is_always_a_finite_number(value):
    subtask = planner.Subtask(id="s1", description="x", difficulty=value)
    assert subtask.difficulty == 0.5


def test_planner_reply_with_nan_difficulty_gives_a_usable_plan():
    plan = parsing.parse_model('{"subtasks": [{"id": "s1", "description": "add", "difficulty": "nan"},'
                               '{"id": "s2", "description": "check", "difficulty": NaN}]}', planner.Plan)
    assert [s.difficulty for s in plan.subtasks] == [0.5, 0.5]


# --- the fuzz: 10,000 generated outputs through every parser and role ---------------------------------
def test_ten_thousand_adversarial_outputs_raise_only_typed_parse_errors():
    with watchdog(1800):  # the whole run takes well under a minute; this only turns a hang into a failure
        report = fuzz(10_000, seed=14, big=0.002)
    assert report.calls >= 10_000 * 30
    assert report.escaped == [], report.escaped[:5]
