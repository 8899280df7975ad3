"""``game24``: combine four numbers with + - * / to reach 24. The answer expression is parsed by a small
loop (integers, + - * /, parentheses only; size-limited), must use each number exactly once, and is
evaluated with ``Fraction``: never eval, never recursion."""

from __future__ import annotations

import functools
import itertools
import re
from collections import Counter
from fractions import Fraction

from seasoned.errors import EnvError

from .answers import tail
from .base import Environment, Task, Verdict
from .seeded import make_id, parse_id, plan, rng

LEVELS = range(1, 4)  # 1: many solutions ... 3: few
TARGET = 24
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
_CANDIDATE = re.compile(r"[\d\s+\-*/×x÷()\[\].]+")


@functools.lru_cache(maxsize=4096)
def count_solutions(numbers: tuple[int, ...], target: int = TARGET) -> int:
    """How many (ordered) ways of combining ``numbers`` reach ``target`` (0 = unsolvable)."""

    def ways(values: tuple[Fraction, ...]) -> int:
        if len(values) == 1:
            return int(values[0] == target)
        total = 0
        for i, j in itertools.permutations(range(len(values)), 2):
            rest = tuple(v for k, v in enumerate(values) if k not in (i, j))
            a, b = values[i], values[j]
            results = [a + b, a - b, a * b] + ([a / b] if b != 0 else [])
            for value in results:
                total += ways(rest + (value,))
        return total

    return ways(tuple(Fraction(n) for n in numbers))


class ExpressionError(ValueError):
    pass


MAX_EXPRESSION_CHARS = 200  # "(13 - 1) * (13 - 11)" is 20; the limit keeps checking cheap on any reply
MAX_NUMBERS = 12
MAX_DIGITS = 6
_TOKEN = re.compile(r"\s*(?:(\d+)|([-+*/()]))")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionError("only integers, + - * / and parentheses are allowed "
                                  f"(found {text[position:].strip()[:20]!r})")
        tokens.append(match.group(1) or match.group(2))
        position = match.end()
    return tokens


def _apply(values: list[Fraction], op: str) -> None:
    right, left = values.pop(), values.pop()
    if op == "/" and right == 0:
        raise ExpressionError("division by zero")
    values.append(_OPS[op](left, right))


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Value and the numbers used, for an expression of integers, + - * / and parentheses only.

    A loop over tokens (shunting-yard), not recursion and not ``eval``: any input is refused or evaluated
    in time linear in its length, which is capped (``MAX_EXPRESSION_CHARS``, ``MAX_NUMBERS``)."""
    if not isinstance(expression, str):
        raise ExpressionError("the expression must be text")
    text = expression.replace("×", "*").replace("÷", "/").replace("x", "*").replace("[", "(").replace("]", ")")
    if len(text.strip()) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    values: list[Fraction] = []
    operators: list[str] = []
    used: list[int] = []
    expect_operand = True
    for token in _tokens(text.strip()):
        if token.isdigit():
            if not expect_operand:
                raise ExpressionError(f"not an arithmetic expression: {expression.strip()!r}")
            if len(token) > MAX_DIGITS or len(used) >= MAX_NUMBERS:
                raise ExpressionError(f"too many or too large numbers (at most {MAX_NUMBERS} of "
                                      f"{MAX_DIGITS} digits)")
            used.append(int(token))
            values.append(Fraction(int(token)))
            expect_operand = False
        elif token == "(":
            if not expect_operand:
                raise ExpressionError(f"not an arithmetic expression: {expression.strip()!r}")
            operators.append(token)
        elif token == ")":
            if expect_operand:
                raise ExpressionError(f"not an arithmetic expression: {expression.strip()!r}")
            while operators and operators[-1] != "(":
                _apply(values, operators.pop())
            if not operators:
                raise ExpressionError("unbalanced parentheses")
            operators.pop()
        else:
            if expect_operand:  # unary signs, "2 ** 5", "+ 3"
                raise ExpressionError(f"not an arithmetic expression: {expression.strip()!r}")
            while operators and operators[-1] != "(" and _PRECEDENCE[operators[-1]] >= _PRECEDENCE[token]:
                _apply(values, operators.pop())
            operators.append(token)
            expect_operand = True
    if expect_operand:
        raise ExpressionError(f"not an arithmetic expression: {expression.strip()!r}")
    while operators:
        op = operators.pop()
        if op == "(":
            raise ExpressionError("unbalanced parentheses")
        _apply(values, op)
    return values[0], used


class Game24Env(Environment):
    name = "game24"
    description = "Game of 24: use four numbers once each with + - * / to make 24 (difficulty 1..3)."

    def _make(self, d: int, k: int) -> Task:
        r = rng(self.name, d, k)
        while True:
            numbers = tuple(sorted(r.randint(1, 13) for _ in range(4)))
            ways = count_solutions(numbers)
            level = 1 if ways >= 60 else 2 if ways >= 16 else 3 if ways > 0 else 0
            if level == d:
                break
        shown = " ".join(map(str, numbers))
        prompt = (f"Use the numbers {shown} exactly once each, with +, -, *, / and parentheses, to make {TARGET}. "
                  f"Finish with 'Answer: <expression>', e.g. Answer: (1 + 2 + 3) * 4")
        return Task(make_id(self.name, d, k), self.name, prompt, difficulty=d,
                    metadata={"numbers": list(numbers), "target": TARGET, "solutions": ways})

    def tasks(self, n=None, seed=0, difficulty=None) -> list[Task]:
        return [self._make(d, k) for d, k in plan(self.name, n, seed, difficulty, LEVELS)]

    def get_task(self, task_id: str) -> Task:
        return self._make(*parse_id(self.name, task_id, LEVELS))

    def _candidates(self, text: str) -> list[str]:
        found = []
        for chunk in _CANDIDATE.findall(text or ""):
            chunk = chunk.strip()
            if sum(c.isdigit() for c in chunk) and any(op in chunk for op in "+-*/×÷x"):
                found.append(chunk.strip("x. "))
        # "expr = 24": drop the right-hand side (split on '=' first so the target is not part of it)
        return found

    def extract_answer(self, text: str) -> str | None:
        text = tail(text)
        marked = re.findall(r"answer\s*+[:=]?\s*+([^\n]*)", text, re.I)
        for source in ([m.split("=")[0] for m in marked], [line.split("=")[0] for line in text.splitlines()]):
            for line in reversed(source):
                for chunk in reversed(self._candidates(line)):
                    try:
                        evaluate(chunk)
                    except ExpressionError:
                        continue
                    return " ".join(chunk.split())
        return None

    async def verify(self, task: Task, answer: str) -> Verdict:
        numbers, target = task.metadata.get("numbers"), task.metadata.get("target", TARGET)
        if not numbers:
            raise EnvError(f"task {task.id!r} has no numbers in its metadata")
        expression = self.extract_answer(answer)
        if expression is None:
            return Verdict(0.0, False, {"reason": "no arithmetic expression found in the answer"})
        try:
            value, used = evaluate(expression)
        except ExpressionError as exc:
            return Verdict(0.0, False, {"expression": expression, "reason": str(exc)})
        if Counter(used) != Counter(numbers):
            return Verdict(0.0, False, {"expression": expression,
                                        "reason": f"must use exactly {sorted(numbers)}, used {sorted(used)}"})
        ok = value == target
        return Verdict(float(ok), ok, {"expression": expression, "value": str(value)})
