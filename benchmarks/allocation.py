"""Budget allocation and the experience loop on the embedded real model (multi-stage ``sums`` tasks).

    python -m seasoned.benchmarks.allocation [--warmup 24] [--eval 24] [--stream 50] [--budget 800] [--stages 2]

Part A, equal total token budget per task: end-to-end success of ``uniform``, ``difficulty`` and
``learned`` allocation on the same evaluation tasks; ``learned`` reads the allocation records of a
warm-up stream (run first, with exploration). Part B, a stream of tasks with memory on (retrieval,
curation, learned allocation) versus off (difficulty allocation): success rate and tokens per solved
task, overall and after warm-up (second half of the stream). Counts and Wilson 95% intervals throughout.
Targets from the issue: learned >= difficulty >= uniform; memory on: tokens per solved task at most half
of memory off after warm-up, at no lower success.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from seasoned.envs import get_env
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.allocation import Learned
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger

from .stats import wilson

SAMPLE_TOKENS = 48


def fmt(name: str, passed: list[bool], tokens: list[int]) -> dict:
    solved = sum(passed)
    low, high = wilson(solved, len(passed))
    return {"arm": name, "tasks": len(passed), "solved": solved, "success": solved / max(len(passed), 1),
            "ci95": [round(low, 3), round(high, 3)], "tokens": sum(tokens),
            "tokens_per_task": sum(tokens) / max(len(tokens), 1),
            "tokens_per_solved": sum(tokens) / solved if solved else None}


def show(row: dict) -> None:
    per_solved = f"{row['tokens_per_solved']:.0f}" if row["tokens_per_solved"] else "n/a"
    print(f"  {row['arm']:<28} success {row['success']:.3f} ({row['solved']}/{row['tasks']}, 95% CI "
          f"{row['ci95'][0]:.3f}-{row['ci95'][1]:.3f})  tokens/task {row['tokens_per_task']:.0f}  "
          f"tokens/solved {per_solved}", flush=True)


async def run_stream(agent: Agent, env, tasks, budget: int) -> tuple[list[bool], list[int]]:
    passed, tokens = [], []
    for task in tasks:
        result = await agent.arun(task, env=env, budget={"max_tokens": budget})
        verdict = await env.verify(task, result.text)
        passed.append(bool(verdict.passed))
        tokens.append(result.spend.tokens)
    return passed, tokens


def make_agent(model: str, seed: int, **kwargs) -> Agent:
    return Agent(gateway=Gateway(model, ledger=Ledger(), max_concurrency=8), record=False, checkpoint=False,
                 strategy=parse_strategy("adaptive-8", max_tokens=SAMPLE_TOKENS, seed=seed), **kwargs)


def open_bank(root: Path, name: str) -> MemoryBank:
    return MemoryBank.open(f"sqlite:///{root / name}.db", namespace=name, chroma_path=str(root / f"{name}-chroma"))


async def part_a(args, env, root: Path) -> list[dict]:
    print(f"Part A: allocation policies at {args.budget} tokens per {args.stages}-stage task")
    warm_bank = open_bank(root, "warmup")
    warm = make_agent(args.model, args.seed, memory=warm_bank, allocation="learned", namespace="warmup")
    warm_tasks = env.tasks(n=args.warmup, seed=args.seed, difficulty=args.stages)
    passed, tokens = await run_stream(warm, env, warm_tasks, args.budget)
    rows = [fmt("warm-up (learned, exploring)", passed, tokens)]
    show(rows[-1])
    eval_tasks = env.tasks(n=args.eval, seed=args.seed + 1, difficulty=args.stages)
    records = warm_bank.allocations(namespace="warmup")
    policies = {"uniform": "uniform", "difficulty": "difficulty",
                "learned": Learned(lambda: records, seed=args.seed, explore=0.0)}
    for name, policy in policies.items():
        passed, tokens = await run_stream(make_agent(args.model, args.seed, allocation=policy), env, eval_tasks,
                                          args.budget)
        rows.append(fmt(name, passed, tokens))
        show(rows[-1])
    warm_bank.close()
    by = {r["arm"]: r["success"] for r in rows}
    print(f"  learned >= difficulty >= uniform: "
          f"{'met' if by['learned'] >= by['difficulty'] >= by['uniform'] else 'NOT met'} "
          f"({len(records)} allocation records from the warm-up)")
    return rows


async def part_b(args, env, root: Path) -> list[dict]:
    print(f"Part B: a stream of {args.stream} tasks, memory on vs off, {args.budget} tokens per task")
    tasks = env.tasks(n=args.stream, seed=args.seed + 2, difficulty=args.stages)
    half = len(tasks) // 2
    rows = []
    off_passed, off_tokens = await run_stream(make_agent(args.model, args.seed, allocation="difficulty"), env,
                                              tasks, args.budget)
    bank = open_bank(root, "stream")
    on = make_agent(args.model, args.seed, memory=bank, allocation="learned", namespace="stream")
    on_passed, on_tokens = await run_stream(on, env, tasks, args.budget)
    memory_items = bank.stats()
    bank.close()
    for name, passed, tokens in (("memory off", off_passed, off_tokens), ("memory on", on_passed, on_tokens)):
        rows.append(fmt(name, passed, tokens))
        show(rows[-1])
        rows.append(fmt(f"{name}, after warm-up", passed[half:], tokens[half:]))
        show(rows[-1])
    off_late, on_late = rows[1], rows[3]
    if off_late["tokens_per_solved"] and on_late["tokens_per_solved"]:
        ratio = on_late["tokens_per_solved"] / off_late["tokens_per_solved"]
        met = ratio <= 0.5 and on_late["success"] >= off_late["success"]
        print(f"  after warm-up: tokens per solved task on/off = {ratio:.2f} (target <= 0.5), success "
              f"{on_late['success']:.3f} vs {off_late['success']:.3f}: {'met' if met else 'NOT met'}")
    print(f"  memory after the stream: {json.dumps(memory_items, default=str)}")
    return rows


async def main_async(args) -> dict:
    env = get_env("sums")
    with tempfile.TemporaryDirectory(prefix="seasoned-alloc-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        results = {"part_a": await part_a(args, env, root) if args.eval else [],
                   "part_b": await part_b(args, env, root) if args.stream else []}
        print(f"done in {time.perf_counter() - started:.0f}s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--warmup", type=int, default=24)
    parser.add_argument("--eval", type=int, default=24)
    parser.add_argument("--stream", type=int, default=50)
    parser.add_argument("--budget", type=int, default=800, help="tokens per task (all stages together)")
    parser.add_argument("--stages", type=int, default=2, help="stages per task (2..5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
