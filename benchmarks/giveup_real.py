"""Learned give-up and allocation on the embedded real model, after a warm-up (issue 17, parts c and d).

    python -m seasoned.benchmarks.giveup_real --part c [--warmup 100] [--questions 200] [--budgets 2,4,8]
    python -m seasoned.benchmarks.giveup_real --part d [--warmup 40] [--tasks 100] [--budgets 400,800]

(c) ``addition`` difficulty 2: a warm-up stream (adaptive, waves of one, first success stops, at most 8
samples) writes one allocation record per question (samples drawn, success) to a memory bank; the bank's
records give the Beta prior of the kind. Then, at each budget (in samples' worth of tokens per question),
``best_of_n-8`` (the checker picks; the budget caps how many are drawn) against ``adaptive-8`` with the
give-up rule (a verified answer worth ``--solve-value`` tokens; the budget stays its cap), through the solve graph
on the same questions and seeds.
Target: equal accuracy within the interval at at most half the tokens.

(d) ``sums`` (2-stage tasks): a warm-up stream with memory and ``learned`` allocation (exploring) writes the
allocation records; then ``uniform``, ``difficulty`` and ``learned`` at each budget on the same tasks:
accuracy-vs-tokens curves with Wilson bands.
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
from seasoned.graphs.solve import SolveContext, build_solve_graph
from seasoned.graphs.stopping import give_up_rule, priors_from_records
from seasoned.memory import MemoryBank
from seasoned.models import Budget, Gateway, Ledger
from seasoned.settings import DEFAULT_SOLVE_VALUE

from . import curves
from .allocation import run_stream

SAMPLE_TOKENS = 48
KIND = "addition-d2"


def open_bank(root: Path, name: str) -> MemoryBank:
    return MemoryBank.open(f"sqlite:///{root / name}.db", namespace=name, chroma_path=str(root / f"{name}-chroma"))


async def solve_one(graph, gateway: Gateway, env, task, strategy, budget: int | None, stopping: dict | None):
    """One question through the solve graph: (passed, tokens, samples, stop reason)."""
    ctx = SolveContext(gateway=gateway, budget=Budget(max_tokens=budget), strategy=strategy,
                       checker=lambda text: env.verify(task, text), checker_name=f"env:{env.name}",
                       extract=env.extract_answer, answer_format=None)
    ctx.stopping = stopping
    state = await graph.ainvoke({"task": task.prompt, "subtask": "main"}, context=ctx,
                                config={"recursion_limit": 200})
    result = state.get("result") or {}
    verdict = await env.verify(task, result.get("text", ""))
    samples = sum(c["status"] == "ok" for c in state.get("candidates", []))
    return bool(verdict.passed), ctx.budget.spent.tokens, samples, result.get("stop_reason", "")


def show(name: str, p: dict, extra: str = "") -> None:
    print(f"  {name:<30} accuracy {p['accuracy']:.3f} ({p['correct']}/{p['n']}, 95% CI {p['low']:.3f}-"
          f"{p['high']:.3f})  tokens/question {p['tokens_per_task']:.0f} {extra}", flush=True)


async def part_c(args, root: Path) -> dict:
    env = get_env("addition")
    gateway = Gateway(args.model, ledger=Ledger(), max_concurrency=8)
    graph = build_solve_graph().compile()
    probe = await gateway.acomplete(env.tasks(n=1, seed=args.seed, difficulty=2)[0].prompt, max_tokens=1)
    per_call = probe.prompt_tokens + SAMPLE_TOKENS
    bank = open_bank(root, "giveup-c")
    adaptive = parse_strategy("adaptive-8", max_tokens=SAMPLE_TOKENS, seed=args.seed, wave_size=1)
    started = time.perf_counter()
    warm = env.tasks(n=args.warmup, seed=args.seed + 1, difficulty=2)
    solved = 0
    for task in warm:
        passed, tokens, samples, _ = await solve_one(graph, gateway, env, task, adaptive, 8 * per_call, None)
        solved += passed
        bank.record_allocation(KIND, budget={"tokens": 8 * per_call}, spent={"tokens": tokens}, success=passed,
                               model=args.model, extra={"samples": samples})
    records = bank.allocations()
    prior = priors_from_records(records).get((KIND, None))
    print(f"(c) addition d2 on {args.model}: warm-up {len(warm)} questions, {solved} solved, prior "
          f"{prior.describe() if prior else 'n/a'} ({time.perf_counter() - started:.0f}s)", flush=True)
    tasks = env.tasks(n=args.questions, seed=args.seed, difficulty=2)
    best = parse_strategy("best_of_n-8", max_tokens=SAMPLE_TOKENS, seed=args.seed)
    rows = []
    for samples_worth in args.budgets:
        budget = samples_worth * per_call
        stop = give_up_rule(records, args.solve_value, max_samples=8)
        arms = {"best_of_n-8": (best, None), "adaptive-8 + learned give-up": (adaptive, stop)}
        row = {"budget": budget, "samples_worth": samples_worth}
        for name, (strategy, stopping) in arms.items():
            outcomes = [await solve_one(graph, gateway, env, t, strategy, budget, stopping) for t in tasks]
            p = curves.point(sum(o[0] for o in outcomes), len(outcomes),
                             sum(o[1] for o in outcomes) / len(outcomes),
                             samples=sum(o[2] for o in outcomes) / len(outcomes))
            row[name] = p
            show(f"{name} @{budget}", p, f"samples/question {p['samples']:.2f}")
        b, a = row["best_of_n-8"], row["adaptive-8 + learned give-up"]
        ratio = a["tokens_per_task"] / max(b["tokens_per_task"], 1)
        overlap = a["high"] >= b["low"] and b["high"] >= a["low"]
        print(f"   budget {budget}: tokens ratio {ratio:.2f} (target <= 0.5), accuracy intervals overlap: {overlap}"
              f" -> {'met' if overlap and ratio <= 0.5 else 'NOT met'}", flush=True)
        rows.append(row)
    bank.close()
    return {"per_call_tokens": per_call, "prior": prior.describe() if prior else None, "rows": rows,
            "seconds": time.perf_counter() - started}


async def run_tasks(agent: Agent, env, tasks, budget: int) -> dict:
    passed, tokens = await run_stream(agent, env, tasks, budget)
    return curves.point(sum(passed), len(passed), sum(tokens) / max(len(tokens), 1))


async def part_d(args, root: Path) -> dict:
    env = get_env("sums")
    started = time.perf_counter()
    bank = open_bank(root, "giveup-d")
    strategy = parse_strategy("adaptive-8", max_tokens=SAMPLE_TOKENS, seed=args.seed)

    def agent(allocation, memory=None) -> Agent:
        return Agent(gateway=Gateway(args.model, ledger=Ledger(), max_concurrency=8), record=False,
                     checkpoint=False, strategy=strategy, allocation=allocation, memory=memory,
                     namespace="giveup-d")

    warm = env.tasks(n=args.warmup, seed=args.seed + 1, difficulty=2)
    warm_point = await run_tasks(agent("learned", bank), env, warm, max(args.budgets))
    records = bank.allocations(namespace="giveup-d")
    priors = {k: p.describe() for (k, m), p in priors_from_records(records).items() if m is None}
    print(f"(d) sums (2 stages) on {args.model}: warm-up {len(warm)} tasks, success {warm_point['accuracy']:.3f}, "
          f"{len(records)} records; priors {json.dumps(priors)} ({time.perf_counter() - started:.0f}s)", flush=True)
    bank.close()
    tasks = env.tasks(n=args.tasks, seed=args.seed, difficulty=2)
    curve_points: dict[str, list[dict]] = {"uniform": [], "difficulty": [], "learned": []}
    for budget in args.budgets:
        for name, points in curve_points.items():
            policy = Learned(lambda: records, rate=budget, max_samples=8, min_records=args.min_records) \
                if name == "learned" else name
            p = await run_tasks(agent(policy), env, tasks, budget)
            p["budget"] = budget
            points.append(p)
            show(f"{name} @{budget}", p)
    summary = curves.summarize(curve_points, None, reach=(0.1, 0.2))
    if args.out:
        curves.plot(curve_points, Path(args.out) / "d_sums_accuracy_vs_tokens.png", title="(d) sums, SmolLM2-135M")
    return {"warmup": warm_point, "priors": priors, "curves": curve_points, "summary": summary,
            "seconds": time.perf_counter() - started}


async def main_async(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="seasoned-giveup-") as tmp:
        root = Path(tmp)
        return {"c": await part_c(args, root)} if args.part == "c" else {"d": await part_d(args, root)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("c", "d"), required=True)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--questions", type=int, default=200, help="(c) questions per point")
    parser.add_argument("--tasks", type=int, default=100, help="(d) tasks per point")
    parser.add_argument("--budgets", default=None,
                        help="(c) samples' worth of tokens per question (default 2,4,8); (d) tokens per task "
                             "(default 400,800)")
    parser.add_argument("--solve-value", type=float, default=DEFAULT_SOLVE_VALUE,
                        help="(c) what a verified answer is worth, in tokens (the give-up rule's value)")
    parser.add_argument("--min-records", type=int, default=6, help="(d) sampled records a kind needs for its prior")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for results.json and plots")
    args = parser.parse_args()
    default = "2,4,8" if args.part == "c" else "400,800"
    args.budgets = [int(b) for b in (args.budgets or default).split(",")]
    results = asyncio.run(main_async(args))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f"giveup_{args.part}.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
