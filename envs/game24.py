"""``game24``: combine four numbers with + - * / to reach 24. The answer expression is parsed (``ast``,
arithmetic nodes only), must use each number exactly once, and is evaluated with ``Fraction``: never eval."""

from __future__ import annotations

import ast
import functools
import itertools
import re
from collections import Counter
from fractions import Fraction

from .base import EnvError, Environment, Task, Verdict
from .seeded import make_id, parse_id, plan, rng

LEVELS = range(1, 4)  # 1: many solutions ... 3: few
TARGET = 24
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b}
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


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Value and the numbers used, for an expression of integers, + - * / and parentheses only."""
    text = expression.replace("×", "*").replace("÷", "/").replace("x", "*").replace("[", "(").replace("]", ")")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"not an arithmetic expression: {expression.strip()!r}") from None
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ExpressionError("division by zero")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        raise ExpressionError(f"only integers, + - * / and parentheses are allowed (found {type(node).__name__})")

    return walk(tree), used


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
        text = text or ""
        marked = re.findall(r"answer\s*[:=]?\s*([^\n]*)", text, re.I)
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
