"""A user's checker, whatever its shape, as the solve graph's checker (adapted once, here).

``Agent(checker=fn)`` and ``agent.run(task, checker=fn)`` accept ``fn(text)`` (``text``: a candidate's whole
reply; with tools, the answer it gave) that is sync or async and
returns a ``bool`` (passed or not), a number (a reward in 0..1, passed at ``PASS_REWARD`` or more) or a
verdict (``seasoned.graphs.Verdict``, the same class as ``seasoned.envs.Verdict``, or any object with
``passed``/``reward``/``details``). ``answer_is(42)`` is the checker of a known answer: it compares final
answers, not reply texts ("Answer: 42." and "40 + 2 = 42" pass).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from seasoned.agents import solver
from seasoned.envs.base import Verdict
from seasoned.errors import CheckerError

PASS_REWARD = 0.5


def to_verdict(value: Any, name: str = "checker") -> Verdict:
    """The verdict a checker's return value stands for."""
    if isinstance(value, Verdict):
        return value
    if isinstance(value, bool):
        return Verdict(float(value), value)
    if isinstance(value, (int, float)):
        return Verdict(float(value), float(value) >= PASS_REWARD, {"score": float(value)})
    if hasattr(value, "passed"):
        passed = bool(value.passed)
        reward = getattr(value, "reward", None)
        return Verdict(float(passed if reward is None else reward), passed, getattr(value, "details", "") or "")
    raise CheckerError(f"{name} must return a bool, a number in 0..1 or a Verdict, not {type(value).__name__} "
                       f"({str(value)[:60]!r})")


def answer_is(expected: str | float) -> Callable[[str], bool]:
    """A checker that passes a reply whose final answer (``solver.extract_answer``) equals ``expected`` once
    both are normalised (``solver.normalize_answer``: case, spaces, trailing punctuation, number formats)."""
    wanted = solver.normalize_answer(str(expected))
    if wanted is None:
        raise CheckerError("answer_is: expected a non-empty answer")

    def check(text: str) -> bool:
        return solver.normalize_answer(solver.extract_answer(text)) == wanted

    check.__name__ = "answer_is"
    return check


def as_checker(fn: Callable[[str], Any] | None) -> Callable[[str], Awaitable[Verdict]] | None:
    """An async ``text -> Verdict``; sync checkers run in a worker thread (they may block)."""
    if fn is None or getattr(fn, "_seasoned_checker", False):
        return fn
    if not callable(fn):
        raise CheckerError(f"checker must be callable, not {type(fn).__name__}")
    name = getattr(fn, "name", None) or getattr(fn, "__name__", None) or "checker"
    name = "checker" if name == "<lambda>" else name

    async def check(text: str) -> Verdict:
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
            value = await fn(text)
        else:
            value = await asyncio.to_thread(fn, text)
            if inspect.isawaitable(value):
                value = await value
        return to_verdict(value, name)

    check._seasoned_checker = True  # type: ignore[attr-defined]
    check.name = name if name.startswith("env") else f"env:{name}"  # type: ignore[attr-defined]
    return check
