"""Running the tasks of a grid: in this process (asyncio, ``workers`` at once) or over Ray.

Both ways produce the same rows. A memory-on arm is a *stream*: its tasks run one after another, in the
same order for every memory arm, because what the agent learns from task i is what helps on task i+1;
arms (and the tasks of memory-off arms) run concurrently. Under Ray each task is a Ray task; a memory
stream submits its next task when the previous one returned, and its memory lives in the shared database
(PostgreSQL + Chroma server), so any worker can run any step of the stream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .grid_config import Arm, GridConfig, GridError, memory_url_for

Job = tuple[Arm, int, Any]  # arm, index in the task stream, task
OnRow = Callable[[dict], None]


# --- one task ----------------------------------------------------------------------------------------
def build_agent(arm: Arm, *, memory: Any, record: bool, namespace: str, concurrency: int = 8,
                connection: dict | None = None):
    """``connection``: ``api_base``/``api_key`` for the arm's model (an OpenAI-compatible server)."""
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.models import Gateway, Ledger

    strategy = parse_strategy(arm.strategy, max_tokens=arm.max_tokens, seed=arm.seed)
    gateway = Gateway(arm.model, ledger=Ledger(), max_concurrency=concurrency, **(connection or {}))
    return Agent(gateway=gateway, memory=memory,
                 record=record, checkpoint=False, strategy=strategy, namespace=namespace,
                 allocation=arm.allocation or "uniform")


async def run_task(agent: Any, env: Any, arm: Arm, index: int, task: Any) -> dict:
    """Run one task of one arm and judge it with the environment (the same judge for every arm)."""
    run_id = f"bench-{arm.slug}-{index}-{uuid.uuid4().hex[:6]}"
    budget = {"max_tokens": arm.budget} if arm.budget is not None else None
    result = await agent.arun(task, env=env, budget=budget, run_id=run_id)
    verdict = await env.verify(task, result.text)
    subtasks = [{"kind": s.get("kind"), "difficulty": s.get("difficulty"),
                 "allocated": (s.get("result") or {}).get("allocated"),
                 "tokens": int((s.get("result") or {}).get("tokens") or 0),
                 "verified": bool((s.get("result") or {}).get("verified"))} for s in result.subtasks]
    candidates = len(result.candidates) or sum(int((s.get("result") or {}).get("candidates") or 0)
                                                for s in result.subtasks)
    spend = result.spend
    return {"arm": arm.key, **arm.fields(), "task_id": task.id, "index": index, "difficulty": task.difficulty,
            "passed": bool(verdict.passed), "reward": float(verdict.reward), "verified": bool(result.verified),
            "tokens": spend.tokens, "prompt_tokens": spend.prompt_tokens,
            "completion_tokens": spend.completion_tokens, "usd": spend.usd, "calls": spend.calls,
            "seconds": spend.seconds, "candidates": candidates, "stop_reason": result.stop_reason,
            "run_id": result.run_id, "memory_items": len(result.memory_ids), "subtasks": subtasks}


def open_memory(arm: Arm, config: GridConfig, out: Path, grid_id: str):
    """A fresh bank per memory-on arm (arms never share experience): a SQLite file in the output folder,
    or, under Ray, an arm-specific namespace in the shared database. Resuming reopens the same one."""
    from seasoned.memory import MemoryBank

    if config.ray is not None:
        return MemoryBank.open(memory_url_for(config), namespace=f"bench-{grid_id}-{arm.slug}")
    folder = out / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    return MemoryBank.open(f"sqlite:///{folder / arm.slug}.db", namespace="bench",
                           chroma_path=str(folder / f"{arm.slug}.chroma"))


def _fail(arm: Arm, task_id: str, exc: BaseException) -> GridError:
    return GridError(f"task {task_id} of arm [{arm.label()}] failed: {type(exc).__name__}: {exc}. "
                     "Finished rows are kept in per-task.jsonl: rerun with the same --out to resume.")


# --- in this process ---------------------------------------------------------------------------------
async def run_local(jobs: list[Job], config: GridConfig, out: Path, grid_id: str, on_row: OnRow,
                    connection: dict | None = None) -> None:
    """``config.workers`` tasks at once (a semaphore); memory streams run their tasks in order."""
    from seasoned.envs import get_env

    envs = {name: get_env(name) for name in {arm.env for arm, _, _ in jobs}}
    by_arm: dict[str, list[Job]] = {}
    for job in jobs:
        by_arm.setdefault(job[0].key, []).append(job)
    slots = asyncio.Semaphore(config.workers)
    banks: list[Any] = []

    async def one(agent: Any, arm: Arm, index: int, task: Any) -> None:
        async with slots:
            try:
                row = await run_task(agent, envs[arm.env], arm, index, task)
            except Exception as exc:
                raise _fail(arm, task.id, exc) from exc
        on_row(row)

    async def stream(agent: Any, arm_jobs: list[Job]) -> None:
        for arm, index, task in sorted(arm_jobs, key=lambda job: job[1]):
            await one(agent, arm, index, task)

    try:
        async with asyncio.TaskGroup() as group:
            for arm_jobs in by_arm.values():
                arm = arm_jobs[0][0]
                memory = None
                if arm.memory:
                    memory = await asyncio.to_thread(open_memory, arm, config, out, grid_id)
                    banks.append(memory)
                agent = build_agent(arm, memory=memory, record=config.record, namespace="bench",
                                    concurrency=max(8, config.workers), connection=connection)
                if arm.memory:
                    group.create_task(stream(agent, arm_jobs))
                else:
                    for _, index, task in arm_jobs:
                        group.create_task(one(agent, arm, index, task))
    except BaseExceptionGroup as group_error:
        grid_errors = [e for e in group_error.exceptions if isinstance(e, GridError)]
        raise (grid_errors[0] if grid_errors else group_error.exceptions[0]) from None
    finally:
        for bank in banks:
            bank.close()


# --- over Ray ----------------------------------------------------------------------------------------
RAY_MISSING = "--ray needs Ray, an optional extra: pip install 'seasoned[ray]'"


def import_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise GridError(RAY_MISSING) from None
    return ray


def ray_task(arm_fields: dict, index: int, task_id: str, options: dict) -> dict:
    """What a Ray worker runs: rebuild the environment, the agent and (memory arms) the shared bank."""
    from seasoned.envs import get_env
    from seasoned.memory import MemoryBank

    if options.get("setup") is not None:
        options["setup"]()
    arm = Arm(**arm_fields)
    env = get_env(arm.env)
    task = env.get_task(task_id)
    memory = None
    if arm.memory:
        memory = MemoryBank.open(options["memory_url"], namespace=f"bench-{options['grid_id']}-{arm.slug}")
    try:
        agent = build_agent(arm, memory=memory, record=options["record"], namespace="bench",
                            connection=options.get("connection"))
        return asyncio.run(run_task(agent, env, arm, index, task))
    finally:
        if memory is not None:
            memory.close()


def run_ray(jobs: list[Job], config: GridConfig, grid_id: str, on_row: OnRow,
            setup: Callable[[], None] | None = None, connection: dict | None = None) -> None:
    """Every task as a Ray task (memory streams: one at a time, in order); rows come back to this process."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=None if config.ray == "local" else config.ray, include_dashboard=False,
                     log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - any failure to reach Ray is reported as such
            raise GridError(f"--ray {config.ray}: cannot connect to Ray ({exc})") from None
        started = True
    remote = ray.remote(ray_task)
    options = {"setup": setup, "memory_url": memory_url_for(config), "grid_id": grid_id, "record": config.record,
               "connection": connection}
    streams: dict[str, list[Job]] = {}
    pending: dict[Any, Job] = {}

    def submit(job: Job) -> None:
        arm, index, task = job
        pending[remote.remote(arm.fields(), index, task.id, options)] = job

    for job in jobs:
        if job[0].memory:
            streams.setdefault(job[0].key, []).append(job)
        else:
            submit(job)
    for arm_jobs in streams.values():
        arm_jobs.sort(key=lambda job: job[1])
        submit(arm_jobs.pop(0))
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            arm, _, task = pending.pop(done[0])
            try:
                row = ray.get(done[0])
            except Exception as exc:
                raise _fail(arm, task.id, getattr(exc, "cause", None) or exc) from exc
            on_row(row)
            if arm.memory and streams.get(arm.key):
                submit(streams[arm.key].pop(0))
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()
