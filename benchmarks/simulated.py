"""Allocation and stopping against the oracle, on the calibrated simulator (``sim/`` provider).

    python -m seasoned.benchmarks.simulated [--part a|b|graph|all] [--tasks 2000] [--out DIR]

The world (``models.sim.mixed_world``) has four kinds: easy, steep (success rises fast with samples), flat
(a task is solved at once or never) and hopeless; every (sub)task has a latent per-sample success
probability, so the **oracle** is known: the best expected success a policy that knows every probability
can reach at a given number of tokens per task (``stopping.oracle``).

A stream of tasks shares its budget: ``B`` tokens per task on average, savings carried on to later tasks
(never borrowed from them), so a token one task does not spend can buy success elsewhere. Every policy
gets the same stream, the same sample draws (common random numbers) and the same budget.

- **(a)** multi-stage tasks (2-3 chained stages of mixed kinds), at 5 budgets: ``uniform``, ``difficulty``
  and ``learned`` allocation (adaptive sampling, first success stops a stage, at most 16 samples a stage)
  after a warm-up stream whose records give ``learned`` its priors; targets: learned >= 90% of the oracle at
  every budget, and >= uniform + 10 points at the tightest budget where the oracle exceeds 50%.
- **(b)** single questions: ``best_of_n-8`` (the checker picks), ``adaptive-8`` (first success stops),
  ``adaptive-8`` with learned give-up at several budgets, and oracle stopping; target: learned give-up within
  1 point of best-of-8's accuracy with at most half its tokens, and within 5% of oracle stopping.
- **graph**: the same policies through the real LangGraph graphs and litellm (``sim/`` model, ``Agent``),
  on a subset: tasks per second, and agreement with the direct simulation.
- **judge**: no checker, through the graphs: ``self_consistency-8``, judge-picked ``best_of_n-8`` and
  ``adaptive-8`` (the simulator's judge is right 80% of the time); tokens and accuracy.

The direct simulation runs the policy objects themselves (``allocation``, ``stopping``) with the graph's
rules (allocation recomputed over what is left, a stage stops at its first success, its give-up point or
its budget), because the graphs reach hundreds, not thousands, of tasks per second (measured by ``graph``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from seasoned.envs.sim import SimEnv
from seasoned.graphs.allocation import DifficultyWeighted, Learned, SubtaskNeed, Uniform
from seasoned.graphs.stopping import (
    KindPrior,
    KnownStage,
    decide_wave,
    oracle,
    price_for_rate,
    priors_from_records,
)
from seasoned.graphs.stopping import spec as stop_spec
from seasoned.models import sim

from . import curves

PROMPT_TOKENS = 80  # what a stage's prompt costs per sample (about what the graphs send for these tasks)
MAX_SAMPLES = 16
BUDGETS_A = (150, 300, 600, 1200, 2400)
WEIGHTS_A = {"easy": 0.4, "steep": 0.3, "flat": 0.15, "hopeless": 0.15}


@dataclass
class Outcome:
    success: bool
    tokens: int
    records: list[dict] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def sample_cost(world: sim.SimWorld, kind: str) -> int:
    return world.kind(kind).tokens + PROMPT_TOKENS


def run_stage(world: sim.SimWorld, stage_id: str, kind: str, *, cap_tokens: int, max_samples: int,
              stopping: dict | None, reasons: list[str]) -> tuple[bool, int, int]:
    """One stage as the solve graph runs it (adaptive, waves of one, first success stops):
    (succeeded, tokens spent, samples drawn). Sample k draws with seed k, as the graph does (seed 0)."""
    cost = sample_cost(world, kind)
    spent = drawn = 0
    while drawn < max_samples and spent + cost <= cap_tokens:
        _, right = world.sample(stage_id, kind, drawn)
        spent += cost
        drawn += 1
        if right:
            return True, spent, drawn
        if stopping is not None:
            wave = decide_wave(stopping, drawn)
            if not wave.go:
                reasons.append(wave.reason(drawn))
                break
    return False, spent, drawn


def run_task(env: SimEnv, task, policy, budget: int, *, rate: float | None = None,
             max_samples: int = MAX_SAMPLES) -> Outcome:
    """A multi-stage task as the task graph runs it: chained stages, allocation recomputed over what is left
    before each stage; ``learned`` gives nothing to a stage after a failed one (its give-up rule)."""
    world, kinds, ids = env.world, task.metadata["kinds"], task.metadata["stage_ids"]
    left, outcome = budget, Outcome(True, 0)
    difficulty = {k: 1 - world.kind(k).mean for k in world.kinds}
    for index, (stage_id, kind) in enumerate(zip(ids, kinds)):
        if not outcome.success and getattr(policy, "gives_up_after_failure", False):
            break
        needs = [SubtaskNeed(f"s{j + 1}", kinds[j], difficulty[kinds[j]]) for j in range(index, len(kinds))]
        if getattr(policy, "uses_task_budget", False):
            allocation = policy.allocate(needs, left, None, task_budget=rate or budget)[needs[0].id]
        else:
            allocation = policy.allocate(needs, left)[needs[0].id]
        if allocation.samples == 0:
            outcome.reasons.append(allocation.reason)
            outcome.success = False
            break
        samples = allocation.samples if allocation.samples else max_samples
        ok, spent, drawn = run_stage(world, stage_id, kind, cap_tokens=min(max(allocation.tokens, 32), left),
                                     max_samples=samples, stopping=allocation.stopping, reasons=outcome.reasons)
        left -= spent
        outcome.tokens += spent
        outcome.success = outcome.success and ok
        outcome.records.append({"subtask_kind": kind, "budget": {"tokens": allocation.tokens},
                                "spent": {"tokens": spent}, "success": ok, "samples": drawn, "model": None,
                                "run_ids": [task.id]})
    return outcome


def run_stream(env: SimEnv, tasks, policy, budget: int, *, pooled: bool = True,
               max_samples: int = MAX_SAMPLES) -> list[Outcome]:
    """Tasks in order, ``budget`` tokens per task on average; with ``pooled``, savings carry on."""
    outcomes, pool = [], budget * len(tasks)
    for index, task in enumerate(tasks):
        later = len(tasks) - index - 1
        cap = pool - budget * later if pooled else budget
        rate = pool / (later + 1) if pooled else budget
        outcome = run_task(env, task, policy, max(int(cap), 0), rate=rate, max_samples=max_samples)
        pool -= outcome.tokens
        outcomes.append(outcome)
    return outcomes


def known(env: SimEnv, task) -> list[KnownStage]:
    return [KnownStage(p, tokens + PROMPT_TOKENS) for p, tokens in env.latent(task)]


def oracle_curve(env: SimEnv, tasks, low: float, high: float, max_samples: int, points: int = 40) -> list[dict]:
    stages = [known(env, t) for t in tasks]
    out = []
    for i in range(points + 1):
        rate = low * (high / low) ** (i / points)
        success, tokens = oracle(stages, rate, max_samples=max_samples)
        out.append({"tokens_per_task": tokens, "accuracy": success, "low": success, "high": success,
                    "n": len(tasks), "correct": success * len(tasks)})
    return out


def warmup_records(env: SimEnv, tasks, max_samples: int) -> list[dict]:
    """Records of a warm-up stream: uniform allocation with room for every sample (explores every kind)."""
    records: list[dict] = []
    for task in tasks:
        budget = sum(sample_cost(env.world, k) for k in task.metadata["kinds"]) * max_samples
        records = run_task(env, task, Uniform(), budget, max_samples=max_samples).records[::-1] + records
    return records


def _point(outcomes: list[Outcome], **extra) -> dict:
    return curves.point(sum(o.success for o in outcomes), len(outcomes),
                        sum(o.tokens for o in outcomes) / max(len(outcomes), 1), **extra)


def _fmt(name: str, p: dict) -> str:
    return (f"  {name:<22} success {p['accuracy']:.3f} [{p['low']:.3f}, {p['high']:.3f}]  "
            f"tokens/task {p['tokens_per_task']:7.1f}")


def part_a(args, out: Path | None) -> dict:
    world = sim.register(sim.mixed_world("bench-a", seed=args.seed))
    env = SimEnv(world, stages=(2, 3), weights=WEIGHTS_A)
    warm = env.tasks(n=args.warmup, seed=args.seed + 1)
    tasks = env.tasks(n=args.tasks, seed=args.seed + 2)
    started = time.perf_counter()
    records = warmup_records(env, warm, MAX_SAMPLES)
    print(f"(a) {len(tasks)} multi-stage tasks (2-3 stages, kinds {WEIGHTS_A}), warm-up {len(warm)} tasks "
          f"-> {len(records)} records; pooled budget per task")
    priors = priors_from_records(records)
    for (kind, model), prior in sorted(priors.items(), key=lambda kv: kv[0][0]):
        if model is None:
            print(f"    prior {kind:<9} {prior.describe()}   (true mean {world.kind(kind).mean:.3f})")
    policies = {"uniform": Uniform(), "difficulty": DifficultyWeighted(),
                "learned": Learned(lambda: records, max_samples=MAX_SAMPLES)}
    # The best any policy that knows only each kind's true Beta (not each task's p) can do: the same rule
    # with the world's true priors. The gap from it to the oracle is what per-task knowledge is worth.
    true_priors = {(k, None): KindPrior(v.alpha, v.beta, v.tokens + PROMPT_TOKENS, 10**6)
                   for k, v in world.kinds.items()}
    bound = Learned(lambda: records, max_samples=MAX_SAMPLES)
    bound._priors = lambda _records: true_priors  # type: ignore[method-assign]
    policies["kind-level bound"] = bound
    stages = [known(env, t) for t in tasks]
    table, curve_points = [], {name: [] for name in policies}
    for budget in args.budgets:
        o_success, o_tokens = oracle(stages, budget, max_samples=MAX_SAMPLES)
        row = {"budget": budget, "oracle": o_success, "oracle_tokens": o_tokens}
        print(f" budget {budget} tokens/task: oracle {o_success:.3f} ({o_tokens:.0f} tokens/task)")
        for name, policy in policies.items():
            outcomes = run_stream(env, tasks, policy, budget, max_samples=MAX_SAMPLES)
            p = _point(outcomes, budget=budget)
            curve_points[name].append(p)
            row[name] = p
            print(_fmt(name, p) + (f"  {p['accuracy'] / o_success:.1%} of oracle" if o_success else ""))
        table.append(row)
    seconds = time.perf_counter() - started
    runs = len(tasks) * len(args.budgets) * len(policies)
    print(f"  direct simulation: {runs} task runs in {seconds:.1f}s ({runs / seconds:.0f} tasks/s)")
    verdict = check_a(table)
    oracle_points = oracle_curve(env, tasks, min(args.budgets) / 2, max(args.budgets) * 1.5, MAX_SAMPLES)
    summary = curves.summarize(curve_points, oracle_points, reach=(0.3, 0.4))
    for name, s in summary.items():
        reach = ", ".join(f"{k}: {'n/a' if v is None else f'{v:.0f}'}" for k, v in s["tokens_to_reach"].items())
        print(f"  {name:<11} AUC vs oracle {s['auc_vs_oracle']:.3f}; tokens/task to reach accuracy {reach}")
    if out:
        curves.plot(curve_points, out / "a_accuracy_vs_tokens.png", oracle=oracle_points,
                    title="(a) simulator, multi-stage tasks")
    return {"table": table, "summary": summary, "verdict": verdict, "tasks_per_second": runs / seconds}


def check_a(table: list[dict]) -> dict:
    ratios = [row["learned"]["accuracy"] / row["oracle"] for row in table if row["oracle"] > 0]
    ninety = all(r >= 0.9 for r in ratios)
    tight = next((row for row in table if row["oracle"] > 0.5), None)
    lead = None if tight is None else (tight["learned"]["accuracy"] - tight["uniform"]["accuracy"]) * 100
    print(f"  learned >= 90% of oracle at every budget: {'met' if ninety else 'NOT met'} "
          f"(lowest {min(ratios):.1%})")
    if tight is None:
        print("  learned - uniform at the tightest budget where oracle > 50%: no such budget")
    else:
        print(f"  learned - uniform at {tight['budget']} tokens/task (tightest with oracle > 50%): "
              f"{lead:+.1f} points (target >= +10): {'met' if lead >= 10 else 'NOT met'}")
    return {"ninety_percent": ninety, "lowest_ratio": min(ratios), "lead_points": lead,
            "lead_budget": tight["budget"] if tight else None}


def part_b(args, out: Path | None) -> dict:
    world = sim.register(sim.mixed_world("bench-b", seed=args.seed))
    env = SimEnv(world, stages=1)
    n = 8
    warm = env.tasks(n=args.warmup, seed=args.seed + 1)
    tasks = env.tasks(n=args.tasks, seed=args.seed + 2)
    records = warmup_records(env, warm, n)
    priors = priors_from_records(records)
    print(f"(b) {len(tasks)} single questions, kinds {sorted(world.kinds)} equally likely, warm-up {len(warm)} "
          f"-> {len(records)} records")
    best = [run_stage_fixed(env, t, n) for t in tasks]
    first = run_stream(env, tasks, Uniform(), n * max(sample_cost(world, k) for k in world.kinds),
                       pooled=False, max_samples=n)
    bo8, ad8 = _point(best), _point(first)
    print(_fmt(f"best_of_n-{n}", bo8))
    print(_fmt(f"adaptive-{n}", ad8))
    mix = [([[(None, priors[(k, None)])]], 1.0) for k in world.kinds]
    stages = [known(env, t) for t in tasks]
    rows, learned_curve = [], []
    for fraction in args.fractions:
        rate = bo8["tokens_per_task"] * fraction
        outcomes = run_learned_single(env, tasks, priors, mix, rate, n)
        p = _point(outcomes, rate=rate)
        o_success, _ = oracle(stages, p["tokens_per_task"], max_samples=n)
        p["oracle_at_same_tokens"] = o_success
        learned_curve.append(p)
        rows.append(p)
        print(_fmt(f"learned give-up @{fraction:.2f}", p) + f"  (rate {rate:.0f}; oracle stopping at the same "
              f"tokens {o_success:.3f}: {p['accuracy'] / o_success:.1%})")
    half = [p for p in rows if p["tokens_per_task"] <= bo8["tokens_per_task"] / 2]
    chosen = max(half, key=lambda p: p["accuracy"]) if half else None
    if chosen:
        gap = (bo8["accuracy"] - chosen["accuracy"]) * 100
        ratio = chosen["tokens_per_task"] / bo8["tokens_per_task"]
        of_oracle = chosen["accuracy"] / chosen["oracle_at_same_tokens"]
        met = gap <= 1 and ratio <= 0.5 and of_oracle >= 0.95
        print(f"  learned give-up at <= 1/2 of best-of-{n}'s tokens: accuracy gap {gap:+.1f} points (target <= 1), "
              f"tokens ratio {ratio:.2f} (target <= 0.5), {of_oracle:.1%} of oracle stopping (target >= 95%): "
              f"{'met' if met else 'NOT met'}")
    oracle_points = oracle_curve(env, tasks, 20, bo8["tokens_per_task"], n)
    named = {f"best_of_n-{n}": [bo8], f"adaptive-{n}": [ad8], "learned give-up": learned_curve}
    summary = curves.summarize(named, oracle_points, reach=(0.5, 0.55))
    if out:
        curves.plot(named, out / "b_accuracy_vs_tokens.png", oracle=oracle_points,
                    title="(b) simulator, single questions")
    return {"best_of_n": bo8, "adaptive": ad8, "learned": rows, "summary": summary}


def run_stage_fixed(env: SimEnv, task, n: int) -> Outcome:
    """best-of-n with a checker: n samples drawn whatever happens; right if any is."""
    kind, stage_id = task.metadata["kinds"][0], task.metadata["stage_ids"][0]
    right = any(env.world.sample(stage_id, kind, k)[1] for k in range(n))
    return Outcome(right, n * sample_cost(env.world, kind))


def run_learned_single(env: SimEnv, tasks, priors: dict, mix, rate: float, n: int) -> list[Outcome]:
    """Adaptive with the learned give-up rule, the price set so the stream spends ``rate`` tokens per task."""
    price = price_for_rate(mix, rate, max_samples=n)
    outcomes = []
    for task in tasks:
        kind, stage_id = task.metadata["kinds"][0], task.metadata["stage_ids"][0]
        prior: KindPrior = priors[(kind, None)]
        stop = stop_spec(prior, price, max_samples=n)
        reasons: list[str] = []
        if not decide_wave(stop, 0).go:
            outcomes.append(Outcome(False, 0, reasons=[decide_wave(stop, 0).reason(0)]))
            continue
        ok, spent, _ = run_stage(env.world, stage_id, kind, cap_tokens=10**9, max_samples=n, stopping=stop,
                                 reasons=reasons)
        outcomes.append(Outcome(ok, spent, reasons=reasons))
    return outcomes


async def part_graph(args) -> dict:
    """The same policies through the real graphs (Agent, LangGraph, litellm, sim/ provider): speed and
    agreement with the direct simulation on the same tasks (per-task budgets, no pooling)."""
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.models import Gateway, Ledger

    world = sim.register(sim.mixed_world("bench-graph", seed=args.seed))
    env = SimEnv(world, stages=(2, 3), weights=WEIGHTS_A)
    records = warmup_records(env, env.tasks(n=args.warmup, seed=args.seed + 1), MAX_SAMPLES)
    tasks = env.tasks(n=args.graph_tasks, seed=args.seed + 2)
    budget = args.graph_budget
    print(f"graph path: {len(tasks)} multi-stage tasks per policy through Agent/LangGraph/litellm (sim/), "
          f"{budget} tokens per task (not pooled)")
    result = {}
    for name in ("uniform", "difficulty", "learned"):
        policy = Learned(lambda: records, max_samples=MAX_SAMPLES, rate=budget) if name == "learned" else name
        direct_policy = Learned(lambda: records, max_samples=MAX_SAMPLES, rate=budget) if name == "learned" else (
            Uniform() if name == "uniform" else DifficultyWeighted())
        agent = Agent(gateway=Gateway(f"sim/{world.name}", ledger=Ledger(), max_concurrency=64), record=False,
                      checkpoint=False, allocation=policy, curate=False,
                      strategy=parse_strategy(f"adaptive-{MAX_SAMPLES}", max_tokens=200, seed=0, wave_size=1))
        started = time.perf_counter()
        outcomes = []
        for task in tasks:
            run = await agent.arun(task, env=env, budget={"max_tokens": budget})
            ok = bool(run.subtasks) and all((s.get("result") or {}).get("verified") for s in run.subtasks)
            outcomes.append(Outcome(ok, run.spend.tokens))
            assert run.spend.tokens <= budget, f"{name}: spent {run.spend.tokens} > budget {budget}"
        seconds = time.perf_counter() - started
        graph_point = _point(outcomes)
        direct_point = _point(run_stream(env, tasks, direct_policy, budget, pooled=False))
        result[name] = {"graph": graph_point, "direct": direct_point, "tasks_per_second": len(tasks) / seconds}
        print(_fmt(f"{name} (graph)", graph_point) + f"  {len(tasks) / seconds:.0f} tasks/s")
        print(_fmt(f"{name} (direct)", direct_point))
    return result


async def part_judge(args) -> dict:
    """Without a checker, through the graphs: the judge (the simulator's, right 80% of the time) against
    agreement alone. Target (issue 17): adaptive spends no more than self-consistency-8 at no lower accuracy."""
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.models import Gateway, Ledger

    world = sim.register(sim.mixed_world("bench-judge", seed=args.seed))
    env = SimEnv(world, stages=1, weights={"easy": 1.0, "steep": 1.0, "flat": 1.0})
    tasks = env.tasks(n=args.judge_tasks, seed=args.seed + 2)
    print(f"no checker: {len(tasks)} single questions (easy, steep, flat) through the graphs, judged afterwards")
    result = {}
    for spec in ("self_consistency-8", "best_of_n-8", "adaptive-8"):
        agent = Agent(gateway=Gateway(f"sim/{world.name}", ledger=Ledger(), max_concurrency=64), record=False,
                      checkpoint=False, curate=False,
                      strategy=parse_strategy(spec, max_tokens=200, seed=0, use_env_check=False))
        started = time.perf_counter()
        outcomes = []
        for task in tasks:
            run = await agent.arun(task, env=env)
            verdict = await env.verify(task, run.text)
            outcomes.append(Outcome(bool(verdict.passed), run.spend.tokens))
        point = _point(outcomes)
        judge_tokens = agent.gateway.ledger.totals(role="verifier").total_tokens / len(tasks)
        result[spec] = {**point, "judge_tokens_per_task": judge_tokens,
                        "tasks_per_second": len(tasks) / (time.perf_counter() - started)}
        print(_fmt(spec, point) + f"  judge tokens/task {judge_tokens:.0f}")
    sc, ad = result["self_consistency-8"], result["adaptive-8"]
    met = ad["tokens_per_task"] <= sc["tokens_per_task"] and ad["high"] >= sc["low"]
    print(f"  adaptive vs self-consistency-8: tokens {ad['tokens_per_task']:.0f} vs {sc['tokens_per_task']:.0f}, "
          f"accuracy {ad['accuracy']:.3f} vs {sc['accuracy']:.3f}: {'met' if met else 'NOT met'}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("a", "b", "graph", "judge", "all"), default="all")
    parser.add_argument("--judge-tasks", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--budgets", default=",".join(map(str, BUDGETS_A)), help="(a) tokens per task")
    parser.add_argument("--fractions", default="0.25,0.3,0.35,0.4,0.5,0.6",
                        help="(b) learned give-up budgets, as fractions of best-of-8's tokens per question")
    parser.add_argument("--graph-tasks", type=int, default=200)
    parser.add_argument("--graph-budget", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for results.json and the plots")
    args = parser.parse_args()
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.fractions = [float(f) for f in args.fractions.split(",")]
    out = Path(args.out) if args.out else None
    results = {}
    if args.part in ("a", "all"):
        results["a"] = part_a(args, out)
    if args.part in ("b", "all"):
        results["b"] = part_b(args, out)
    if args.part in ("graph", "all"):
        results["graph"] = asyncio.run(part_graph(args))
    if args.part in ("judge", "all"):
        results["judge"] = asyncio.run(part_judge(args))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
