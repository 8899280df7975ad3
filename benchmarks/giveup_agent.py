"""The give-up a user gets, through ``Agent``, on the embedded model (issue 25).

    python -m seasoned.benchmarks.giveup_agent --seed S [--warmup 30] [--questions 40] [--budgets 4,8]
                                               [--memory] [--out DIR]

``addition`` difficulty 2. The default agent (``adaptive-8``: a first wave of one sample, then waves of two; the
give-up rule on, the default value of a solve; the environment's check) answers a warm-up stream of
``--warmup`` questions (question seed S + 1), which leaves its attempt records; then, at each budget (in samples'
worth of tokens per question: prompt + 48 completion tokens), ``best_of_n-8`` and the default agent answer the
same ``--questions`` questions (seed S). The default agent keeps learning as it goes, as it would for a user.
No memory unless ``--memory`` (then both arms share one bank, curation off after the warm-up).

Printed: accuracy (Wilson 95% interval), tokens, samples and give-ups per question; where the tokens go (prompt
and completion tokens per sample, samples per question, why runs stopped); the target (accuracy >= best-of-8's
- 3 points at <= 1/2 of its tokens); what any stopping rule could reach on this stream (oracle stopping, each
question's success rate drawn from its posterior given best-of-8's counts); whether the simulator's mixed world
and the simulator calibrated from the warm-up's records match this stream (a parametric-bootstrap G test on
best-of-8's per-question counts); and, on the calibrated simulator, the give-up rule against oracle stopping.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from seasoned.envs import get_env
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.run_context import attempt_kind
from seasoned.graphs.success_model import fit_agreement, fit_posterior, record_tokens
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger, sim

from . import curves
from .simulated import calibrated_world, single_questions

SAMPLE_TOKENS = 48
DEFAULT_ARM = "default agent (adaptive-8 + give-up)"


def question_counts(result, checker_name: str) -> tuple[int, int]:
    """(samples drawn, how many the check accepted) of one run."""
    checks = {v["candidate_id"]: v for v in result.verdicts if v["verifier"] == checker_name}
    drawn = [c for c in result.candidates if c["status"] == "ok" and c["kind"] != "cached"]
    return len(drawn), sum(bool(checks.get(c["id"], {}).get("passed")) for c in drawn)


def stop_kind(reason: str) -> str:
    for key, label in (("budget spent", "budget spent"), ("give up", "gave up"), ("samples drawn", "n drawn"),
                       ("verified by", "verified")):
        if key in reason:
            return label
    return reason[:40] or "?"


async def run_arm(agent: Agent, env, tasks, budget: int, strategy=None) -> dict:
    rows = []
    for task in tasks:
        result = await agent.arun(task, env=env, budget={"max_tokens": budget}, strategy=strategy)
        samples, successes = question_counts(result, f"env:{env.name}")
        rows.append({"passed": bool((await env.verify(task, result.text)).passed) if result.text else False,
                     "tokens": result.spend.tokens, "prompt": result.spend.prompt_tokens,
                     "completion": result.spend.completion_tokens, "samples": samples, "successes": successes,
                     "stop": stop_kind(result.stop_reason), "reason": result.stop_reason})
    n = len(rows)
    drawn = sum(r["samples"] for r in rows) or 1
    point = curves.point(sum(r["passed"] for r in rows), n, sum(r["tokens"] for r in rows) / n,
                         samples=sum(r["samples"] for r in rows) / n,
                         prompt_per_sample=sum(r["prompt"] for r in rows) / drawn,
                         completion_per_sample=sum(r["completion"] for r in rows) / drawn,
                         stops=dict(Counter(r["stop"] for r in rows)))
    point["rows"] = rows
    return point


def oracle_ratio(counts: list[tuple[int, int]], samples: int, slack: float = 0.03, draws: int = 200,
                 seed: int = 0) -> tuple[float, float, float]:
    """What any stopping rule could reach on this stream: the tokens (as a share of best-of-``samples``'s) that
    oracle stopping needs to come within ``slack`` of best-of-``samples``'s accuracy, each question's success
    rate drawn from its posterior given its counts (median and 90% interval over ``draws`` draws)."""
    posterior = fit_posterior(counts, 1.0)
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        rates = []
        for n, k in counts:
            weights = [w * math.exp(math.lgamma(a + k) + math.lgamma(b + n - k) - math.lgamma(a + b + n)
                                    - math.lgamma(a) - math.lgamma(b) + math.lgamma(a + b))
                       for w, a, b in posterior.components]
            _, a, b = rng.choices(posterior.components, weights=weights)[0]
            rates.append(rng.betavariate(a + k, b + n - k))
        target = sum(1 - (1 - p) ** samples for p in rates) - slack * len(rates)
        solved = spent = 0.0
        for p in sorted(rates, reverse=True):  # every sample of a question buys p success per sample
            if solved >= target:
                break
            solved += 1 - (1 - p) ** samples
            spent += sum((1 - p) ** i for i in range(samples))
        ratios.append(spent / (samples * len(rates)))
    ratios.sort()
    return ratios[len(ratios) // 2], ratios[len(ratios) // 20], ratios[-len(ratios) // 20 - 1]


def show(name: str, budget: int, p: dict) -> None:
    print(f"  budget {budget:>4} {name:<38} accuracy {p['accuracy']:.3f} ({p['correct']}/{p['n']}, 95% CI "
          f"{p['low']:.3f}-{p['high']:.3f})  tokens/question {p['tokens_per_task']:.0f}  samples/question "
          f"{p['samples']:.2f}  per sample: prompt {p['prompt_per_sample']:.0f} + completion "
          f"{p['completion_per_sample']:.0f}  stops {p['stops']}", flush=True)


async def main(args) -> dict:
    env = get_env("addition")
    root = Path(tempfile.mkdtemp(prefix="giveup-agent-"))
    bank = None
    if args.memory:
        bank = MemoryBank.open(f"sqlite:///{root}/mem.db", namespace="c", chroma_path=str(root / "chroma"))
    gateway = Gateway(args.model, ledger=Ledger(), max_concurrency=8)
    adaptive = parse_strategy("adaptive-8", max_tokens=SAMPLE_TOKENS, seed=args.seed)
    best = parse_strategy("best_of_n-8", max_tokens=SAMPLE_TOKENS, seed=args.seed)
    agent = Agent(gateway=gateway, memory=bank, namespace="c", record=False, checkpoint=False, strategy=adaptive)
    probe = await gateway.acomplete(env.tasks(n=1, seed=args.seed, difficulty=2)[0].prompt, max_tokens=1)
    per_call = probe.prompt_tokens + SAMPLE_TOKENS
    started = time.perf_counter()
    warm = env.tasks(n=args.warmup, seed=args.seed + 1, difficulty=2)
    warm_rows = (await run_arm(agent, env, warm, 8 * per_call))["rows"]
    kind = attempt_kind(warm[0])
    records = agent.attempts.records("c", gateway.model, kind)
    posterior = fit_posterior([(r["samples"], r["successes"]) for r in records], record_tokens(records) or 1)
    agreement = fit_agreement(records, posterior)
    beta = sum(w * b for w, b in agreement)
    print(f"warm-up: {len(warm)} questions (seed {args.seed + 1}) through the default agent, "
          f"{sum(r['passed'] for r in warm_rows)} solved, {len(records)} attempt records of {kind!r}; posterior "
          f"{posterior.describe()}; P(next verified | f failures) f=0..7: "
          f"{[round(posterior.wave_success(f, 1), 3) for f in range(8)]}; agreement log hazard ratio {beta:+.2f} "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    agent.curate = False
    other = Agent(gateway=gateway, memory=bank, namespace="c", record=False, checkpoint=False, strategy=best,
                  curate=False)
    tasks = env.tasks(n=args.questions, seed=args.seed, difficulty=2)
    results: dict = {"seed": args.seed, "per_call_tokens": per_call, "warmup": records, "budgets": {}}
    for samples_worth in args.budgets:
        budget = samples_worth * per_call
        row = {"best_of_n-8": await run_arm(other, env, tasks, budget),
               DEFAULT_ARM: await run_arm(agent, env, tasks, budget)}
        for name, p in row.items():
            show(name, budget, p)
        b, a = row["best_of_n-8"], row[DEFAULT_ARM]
        ratio = a["tokens_per_task"] / max(b["tokens_per_task"], 1)
        gap = (b["accuracy"] - a["accuracy"]) * 100
        met = gap <= 3 and ratio <= 0.5
        print(f"  budget {budget}: accuracy {a['accuracy']:.3f} vs {b['accuracy']:.3f} ({-gap:+.1f} points, target >= "
              f"-3), tokens ratio {ratio:.2f} (target <= 0.5) -> {'met' if met else 'NOT met'}", flush=True)
        results["budgets"][budget] = {"samples_worth": samples_worth, "arms": row, "ratio": ratio, "gap": gap,
                                      "met": met}
    largest = results["budgets"][max(results["budgets"])]["arms"]["best_of_n-8"]["rows"]
    counts = [(r["samples"], r["successes"]) for r in largest if r["samples"]]
    for samples_worth in args.budgets:
        n = min(samples_worth, max(c[0] for c in counts))
        median, low, high = oracle_ratio(counts, n, seed=args.seed)
        print(f"  oracle stopping on this stream (success rates from best-of-8's counts): within 3 points of "
              f"best-of-{n} at {median:.2f}x its tokens (90% {low:.2f}-{high:.2f}): no stopping rule does better",
              flush=True)
    mixed = sim.calibration_check(sim.pooled_kind(sim.mixed_world()), counts, seed=args.seed)
    world = calibrated_world("giveup-agent", records, args.seed)
    calibrated = sim.calibration_check(world.kind("real"), counts, seed=args.seed)
    print(f"  simulator kinds vs this stream's best-of-8 counts: mixed world {mixed.describe()}", flush=True)
    print(f"  simulator calibrated from the warm-up's records {calibrated.describe()}", flush=True)
    results["calibration"] = {"mixed": mixed.__dict__, "calibrated": calibrated.__dict__}
    sim.register(world)
    results["calibrated_sim"] = single_questions(world, "calibrated from the warm-up", values=args.values,
                                                 warmup=len(records), questions=2000, seed=args.seed)
    sim.unregister(world.name)
    print(f"total {time.perf_counter() - started:.0f}s")
    await agent.aclose()
    await other.aclose()
    if bank is not None:
        bank.close()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"giveup_agent_{args.seed}.json").write_text(json.dumps(results, indent=1, default=str))
        (out / f"attempts_{args.seed}.json").write_text(json.dumps(records))
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--budgets", default="4,8", help="samples' worth of tokens per question, comma-separated")
    parser.add_argument("--values", default="500,1000,2000,4000,8000",
                        help="values of a solve (tokens) for the calibrated simulator's curve")
    parser.add_argument("--memory", action="store_true", help="give both arms a memory bank (curation off after "
                                                              "the warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for the results and the warm-up's attempt records")
    args = parser.parse_args()
    try:
        args.budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
        args.values = [float(v) for v in args.values.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--budgets and --values must be comma-separated numbers, got {args.budgets!r}, {args.values!r}")
    if not args.budgets or min(args.budgets) < 1 or args.warmup < 1 or args.questions < 1:
        parser.error("--budgets must be >= 1, --warmup >= 1, --questions >= 1")
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
