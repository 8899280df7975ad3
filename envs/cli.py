"""What the ``seasoned`` CLI calls for environments: ``seasoned envs list`` and ``seasoned run --env``.

    list_environments(out=print)                                  # one line per environment
    run_environment("game24", model="local/smollm2-135m", n=3)    # per-task reward and spend, then totals
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from seasoned.errors import EnvError

from .registry import get_env, list_envs


def list_environments(out: Callable[[str], None] = print) -> list[dict]:
    """Print and return ``[{"name", "description", "interactive"}]``."""
    rows = list_envs()
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        kind = "interactive" if row["interactive"] else "answer"
        out(f"{row['name']:<{width}}  {kind:<11}  {row['description']}")
    return rows


async def arun_environment(name: str, *, model: str | None = None, task_id: str | None = None,
                           n: int | None = None, seed: int = 0, difficulty: int | None = None,
                           max_steps: int = 10, max_tokens: int = 512, tokens_per_task: int | None = None,
                           env_options: dict | None = None, out: Callable[[str], None] = print) -> list[dict]:
    """Run tasks of an environment with one model (one acting episode each); print and return per-task rows
    ``{"task", "reward", "passed", "tokens", "cost_usd", "seconds", "stopped", "steps"}``."""
    from seasoned.agents.actor import run_actor
    from seasoned.models import Budget, Gateway

    if task_id is not None and n is not None:
        raise EnvError("give either a task id (--task) or a number of tasks (--n), not both")
    env = get_env(name, **(env_options or {}))
    try:
        tasks = [env.get_task(task_id)] if task_id else env.tasks(n=3 if n is None else n, seed=seed,
                                                                  difficulty=difficulty)
        gateway = Gateway(model)
        out(f"env {name} · model {gateway.model} · {len(tasks)} task(s)")
        rows = []
        for task in tasks:
            budget = Budget(max_tokens=tokens_per_task, name=f"task {task.id}") if tokens_per_task else None
            started = time.perf_counter()
            attempt = await run_actor(env, task, gateway, budget=budget, max_steps=max_steps, max_tokens=max_tokens)
            verdict = attempt.verdict
            row = {"task": task.id, "reward": verdict.reward if verdict else 0.0,
                   "passed": bool(verdict and verdict.passed), "tokens": attempt.tokens,
                   "cost_usd": attempt.cost_usd, "seconds": round(time.perf_counter() - started, 1),
                   "stopped": attempt.stopped, "steps": len(attempt.steps)}
            rows.append(row)
            out(f"{row['task']:<40} reward {row['reward']:.2f}  {'PASS' if row['passed'] else 'fail'}  "
                f"tokens {row['tokens']:>6}  ${row['cost_usd']:.4f}  {row['seconds']:>6.1f}s  "
                f"steps {row['steps']:>2}  ({row['stopped']})")
        solved = sum(r["passed"] for r in rows)
        out(f"total: {solved}/{len(rows)} passed · mean reward "
            f"{sum(r['reward'] for r in rows) / max(len(rows), 1):.2f} · tokens {sum(r['tokens'] for r in rows)}"
            f" · ${sum(r['cost_usd'] for r in rows):.4f}")
        return rows
    finally:
        env.close()


def run_environment(name: str, **kwargs) -> list[dict]:
    """Synchronous ``arun_environment`` (for the CLI)."""
    return asyncio.run(arun_environment(name, **kwargs))
