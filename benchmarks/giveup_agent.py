"""Learned give-up on single questions through ``Agent`` (issue 17 part c, the user's path).

    python -m seasoned.benchmarks.giveup_agent [--warmup 30] [--questions 40] [--budgets 4,8]

``addition`` difficulty 2 on the embedded model. A warm-up stream through ``Agent`` with memory on
(``adaptive-8``, waves of one) leaves one allocation record per question (samples drawn, success); then
curation is switched off (so no arm finds the other's verified answers cached) and, at each budget (in
samples' worth of tokens per question), ``best_of_n-8`` against ``adaptive-8``, whose learned give-up
rule ``Agent`` now sets by itself from those records. Same agent, memory and questions for both arms.
Target: equal accuracy within the interval at at most half the tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from seasoned.envs import get_env
from seasoned.graphs import Agent, parse_strategy
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger

from . import curves

SAMPLE_TOKENS = 48


async def main(args) -> None:
    env = get_env("addition")
    root = Path(tempfile.mkdtemp(prefix="giveup-agent-"))
    bank = MemoryBank.open(f"sqlite:///{root}/mem.db", namespace="c", chroma_path=str(root / "chroma"))
    gateway = Gateway(args.model, ledger=Ledger(), max_concurrency=8)
    adaptive = parse_strategy("adaptive-8", max_tokens=SAMPLE_TOKENS, seed=args.seed, wave_size=1)
    best = parse_strategy("best_of_n-8", max_tokens=SAMPLE_TOKENS, seed=args.seed)
    agent = Agent(gateway=gateway, memory=bank, namespace="c", record=False, checkpoint=False, strategy=adaptive)
    probe = await gateway.acomplete(env.tasks(n=1, seed=args.seed, difficulty=2)[0].prompt, max_tokens=1)
    per_call = probe.prompt_tokens + SAMPLE_TOKENS
    started = time.perf_counter()
    solved = 0
    for task in env.tasks(n=args.warmup, seed=args.seed + 1, difficulty=2):
        solved += (await agent.arun(task, env=env, budget={"max_tokens": 8 * per_call})).verified
    print(f"warm-up {args.warmup} questions through Agent, {solved} solved, "
          f"{len(bank.allocations(namespace='c'))} allocation records ({time.perf_counter() - started:.0f}s)",
          flush=True)
    agent.curate = False
    tasks = env.tasks(n=args.questions, seed=args.seed, difficulty=2)
    for samples_worth in args.budgets:
        budget = samples_worth * per_call
        row = {}
        for name, strategy in (("best_of_n-8", best), ("adaptive-8 (Agent's learned give-up)", adaptive)):
            correct, tokens, samples, gave_up = 0, 0, 0, 0
            for task in tasks:
                result = await agent.arun(task, env=env, budget={"max_tokens": budget}, strategy=strategy)
                correct += bool((await env.verify(task, result.text)).passed)
                tokens += result.spend.tokens
                samples += sum(c["status"] == "ok" and c["kind"] != "cached" for c in result.candidates)
                gave_up += "give up" in result.stop_reason
            p = curves.point(correct, len(tasks), tokens / len(tasks), samples=samples / len(tasks))
            row[name] = p
            print(f"  budget {budget:>4} {name:<38} accuracy {p['accuracy']:.3f} ({correct}/{len(tasks)}, 95% CI "
                  f"{p['low']:.3f}-{p['high']:.3f})  tokens/question {p['tokens_per_task']:.0f}  "
                  f"samples/question {p['samples']:.2f}  gave up {gave_up}", flush=True)
        b, a = row["best_of_n-8"], row["adaptive-8 (Agent's learned give-up)"]
        ratio = a["tokens_per_task"] / max(b["tokens_per_task"], 1)
        overlap = a["high"] >= b["low"] and b["high"] >= a["low"]
        print(f"  budget {budget}: tokens ratio {ratio:.2f} (target <= 0.5), intervals overlap: {overlap} -> "
              f"{'met' if overlap and ratio <= 0.5 else 'NOT met'}", flush=True)
    print(f"total {time.perf_counter() - started:.0f}s")
    await agent.aclose()
    bank.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--budgets", default="4,8", help="samples' worth of tokens per question, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        args.budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--budgets must be comma-separated integers, got {args.budgets!r}")
    if not args.budgets or min(args.budgets) < 1 or args.warmup < 0 or args.questions < 1:
        parser.error("--budgets must be >= 1, --warmup >= 0, --questions >= 1")
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
