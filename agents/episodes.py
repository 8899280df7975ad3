"""Run an environment's tasks with one model, one acting episode each (no memory, no test-time scaling):
per-task reward and spend, then totals. The quickest look at how a model does in an environment.

    run_environment("game24", model="local/smollm2-135m", n=3)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from seasoned.envs.registry import get_env
from seasoned.errors import EnvError
from seasoned.models import Budget, Gateway
from seasoned.models.preflight import preflight

from .actor import run_actor


async def arun_environment(name: str, *, model: str | None = None, task_id: str | None = None,
                           n: int | None = None, seed: int = 0, difficulty: int | None = None,
                           max_steps: int = 10, max_tokens: int = 512, tokens_per_task: int | None = None,
                           env_options: dict | None = None, out: Callable[[str], None] = print) -> list[dict]:
    """Run tasks of an environment with one model (one acting episode each); print and return per-task rows
    ``{"task", "reward", "passed", "tokens", "cost_usd", "seconds", "stopped", "steps"}``."""
    if task_id is not None and n is not None:
        raise EnvError("give either a task id (--task) or a number of tasks (--n), not both")
    env = get_env(name, **(env_options or {}))
    try:
        tasks = [env.get_task(task_id)] if task_id else env.tasks(n=3 if n is None else n, seed=seed,
                                                                  difficulty=difficulty)
        gateway = Gateway(model)
        await preflight(gateway)  # a wrong model, file or endpoint: one error before any task
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
    """Synchronous ``arun_environment``."""
    return asyncio.run(arun_environment(name, **kwargs))
