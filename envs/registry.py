"""The environment registry: ``get_env(name, **options)``, ``list_envs()``, ``register_env``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from seasoned.errors import EnvError

from .base import Environment

# name -> "module:Class" (imported on first use so that listing stays light)
_BUILTIN: dict[str, str] = {
    "addition": "seasoned.envs.addition:AdditionEnv",
    "arithmetic": "seasoned.envs.arithmetic:ArithmeticEnv",
    "game24": "seasoned.envs.game24:Game24Env",
    "wordproblems": "seasoned.envs.wordproblems:WordProblemsEnv",
    "humaneval": "seasoned.envs.humaneval:HumanEvalEnv",
    "sums": "seasoned.envs.sums:SumsEnv",
    "sim": "seasoned.envs.sim:SimEnv",
    "swe": "seasoned.envs.swe:SWEEnv",
    "miniwob": "seasoned.envs.miniwob:MiniWoBEnv",
}
_CUSTOM: dict[str, Callable[..., Environment]] = {}


def register_env(name: str, factory: Callable[..., Environment]) -> None:
    """Make ``get_env(name)`` build ``factory(**options)``."""
    _CUSTOM[name] = factory


def _factory(name: str) -> Callable[..., Environment]:
    if name in _CUSTOM:
        return _CUSTOM[name]
    if name not in _BUILTIN:
        raise EnvError(f"unknown environment {name!r}; known: {', '.join(sorted({*_BUILTIN, *_CUSTOM}))}")
    module, _, cls = _BUILTIN[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_env(name: str, **options) -> Environment:
    """The environment called ``name``, built with ``options`` (e.g. ``get_env("swe", path="x.jsonl")``)."""
    factory = _factory(name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise EnvError(f"environment {name!r}: bad option(s) {sorted(options)} ({exc})") from None


def list_envs() -> list[dict]:
    """``[{"name", "description", "interactive"}]`` for every registered environment."""
    rows = []
    for name in sorted({*_BUILTIN, *_CUSTOM}):
        factory = _factory(name)
        rows.append({"name": name, "description": getattr(factory, "description", ""),
                     "interactive": bool(getattr(factory, "interactive", False))})
    return rows


def list_environments(out: Callable[[str], None] = print) -> list[dict]:
    """``seasoned envs list``: print one line per environment and return ``list_envs()``'s rows."""
    rows = list_envs()
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        kind = "interactive" if row["interactive"] else "answer"
        out(f"{row['name']:<{width}}  {kind:<11}  {row['description']}")
    return rows
