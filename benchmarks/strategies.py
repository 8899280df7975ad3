"""Test-time scaling strategies on the embedded real model, at matched budgets.

    python -m seasoned.benchmarks.strategies [--questions 60] [--model local/smollm2-135m] [--out FILE]

Task family: two-digit additions (``addition`` environment, difficulty 2), verifiable. Arms:
``single``; ``best_of_n`` n=8 (the environment's check picks); ``self_consistency`` n=8 (majority vote,
no checker); ``adaptive`` with at most 8 samples and the same token cap as ``best_of_n``. Accuracy is
the final answer's correctness, judged by the environment after the run, with a Wilson 95% interval.
Target from the issue: adaptive within 2 points of best_of_n's accuracy with at most a third of its tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from seasoned.envs import get_env
from seasoned.graphs import Agent, parse_strategy
from seasoned.models import Gateway, Ledger

from .stats import wilson

SAMPLE_TOKENS = 48


def arms(n: int, per_call_tokens: int) -> dict[str, dict]:
    budget_n = n * per_call_tokens
    return {
        "single": {"strategy": parse_strategy("single", max_tokens=SAMPLE_TOKENS), "budget": None},
        f"best_of_n-{n}": {"strategy": parse_strategy(f"best_of_n-{n}", max_tokens=SAMPLE_TOKENS), "budget": None},
        f"self_consistency-{n}": {"strategy": parse_strategy(f"self_consistency-{n}", max_tokens=SAMPLE_TOKENS,
                                                             use_env_check=False), "budget": None},
        f"adaptive-{n}": {"strategy": parse_strategy(f"adaptive-{n}", max_tokens=SAMPLE_TOKENS),
                          "budget": {"max_tokens": budget_n}},
    }


async def run_arm(name: str, spec: dict, tasks, env, model: str, seed: int) -> dict:
    gateway = Gateway(model, ledger=Ledger(), max_concurrency=8)
    agent = Agent(gateway=gateway, record=False, checkpoint=False,
                  strategy=spec["strategy"].model_copy(update={"seed": seed}))
    correct = tokens = samples = 0
    started = time.perf_counter()
    for task in tasks:
        result = await agent.arun(task, env=env, budget=spec["budget"])
        verdict = await env.verify(task, result.text)
        correct += verdict.passed
        tokens += result.spend.tokens
        samples += sum(c["status"] == "ok" for c in result.candidates)
    low, high = wilson(correct, len(tasks))
    return {"arm": name, "questions": len(tasks), "correct": correct, "accuracy": correct / len(tasks),
            "ci95": [round(low, 3), round(high, 3)], "tokens": tokens, "tokens_per_question": tokens / len(tasks),
            "samples_per_question": samples / len(tasks), "seconds": round(time.perf_counter() - started, 1),
            "seconds_per_question": round((time.perf_counter() - started) / len(tasks), 2)}


async def main_async(args) -> list[dict]:
    env = get_env("addition")
    tasks = env.tasks(n=args.questions, seed=args.seed, difficulty=2)
    probe = Gateway(args.model, ledger=Ledger())
    sample_prompt = (await probe.acomplete(tasks[0].prompt, max_tokens=1)).prompt_tokens
    rows = []
    for name, spec in arms(args.n, sample_prompt + SAMPLE_TOKENS).items():
        row = await run_arm(name, spec, tasks, env, args.model, args.seed)
        rows.append(row)
        print(f"{row['arm']:<20} accuracy {row['accuracy']:.3f} ({row['correct']}/{row['questions']}, "
              f"95% CI {row['ci95'][0]:.3f}-{row['ci95'][1]:.3f})  tokens/question {row['tokens_per_question']:.0f}"
              f"  wall s/question {row['seconds_per_question']:.2f}"
              f"  samples/question {row['samples_per_question']:.2f}  {row['seconds']}s", flush=True)
    best = next(r for r in rows if r["arm"].startswith("best_of_n"))
    adaptive = next(r for r in rows if r["arm"].startswith("adaptive"))
    gap = (best["accuracy"] - adaptive["accuracy"]) * 100
    ratio = adaptive["tokens"] / max(best["tokens"], 1)
    print(f"adaptive vs best_of_n: accuracy gap {gap:+.1f} points (target <= 2), tokens ratio {ratio:.2f} "
          f"(target <= 0.33): {'met' if gap <= 2 and ratio <= 1 / 3 else 'NOT met'}; wall time ratio "
          f"{adaptive['seconds'] / max(best['seconds'], 1e-9):.2f}")
    single = next(r for r in rows if r["arm"] == "single")
    print("wall time vs single: " + ", ".join(f"{r['arm']} {r['seconds'] / max(single['seconds'], 1e-9):.2f}x"
                                              for r in rows if r is not single))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
