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
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from seasoned.envs.sim import SimEnv
from seasoned.graphs.allocation import DifficultyWeighted, Learned, SubtaskNeed, Uniform
from seasoned.graphs.stopping import (
    KindPosterior,
    KindPrior,
    KnownStage,
    decide_wave,
    give_up_rule,
    oracle,
    plan_task,
    priors_from_records,
)
from seasoned.graphs.success_model import fit_posterior, record_tokens, repeat_share, sample_pattern
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
    policies["true kind Betas"] = bound
    stages = [known(env, t) for t in tasks]
    table, curve_points = [], {name: [] for name in policies}
    for budget in args.budgets:
        o_success, o_tokens = oracle(stages, budget, max_samples=MAX_SAMPLES)
        bound = kind_level_bound(tasks, true_priors, budget, MAX_SAMPLES)
        row = {"budget": budget, "oracle": o_success, "oracle_tokens": o_tokens, "kind_level_bound": bound}
        print(f" budget {budget} tokens/task: oracle {o_success:.3f} ({o_tokens:.0f} tokens/task); the most any policy "
              f"that does not know each task's own rates can expect: {bound:.3f} ({bound / o_success:.1%} of oracle)")
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


def kind_level_bound(tasks, priors: dict, rate: float, max_samples: int, kinds_of=None) -> float:
    """An upper bound on the expected success per task of any policy that knows each stage's kind (its true
    Beta) but not the task's own success rates, spending ``rate`` tokens per task on average (learning by
    sampling included): the Lagrangian dual, min over a token's price of (the mean over tasks of the Bayes
    plan's net value at that price, or 0 when not attempted) + price x rate. Weak duality makes it a bound;
    the Bayes plan at the best price reaches it in expectation."""
    shapes = Counter(tuple(kinds_of(t) if kinds_of else t.metadata["kinds"]) for t in tasks)

    def dual(log_price: float) -> float:
        price = math.exp(log_price)
        total = sum(count * max(plan_task([[(None, priors[(k, None)])] for k in kinds], price,
                                          max_samples=max_samples)[0].value, 0.0)
                    for kinds, count in shapes.items())
        return total / len(tasks) + price * rate

    low, high = math.log(1e-7), math.log(1.0 / min(p.tokens for p in priors.values()))
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):  # golden section: the dual is convex in the price, so unimodal in its log
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if dual(a) < dual(b):
            high = b
        else:
            low = a
    return dual((low + high) / 2)


def check_a(table: list[dict]) -> dict:
    ratios = [row["learned"]["accuracy"] / row["oracle"] for row in table if row["oracle"] > 0]
    ninety = all(r >= 0.9 for r in ratios)
    of_bound = [row["learned"]["accuracy"] / row["kind_level_bound"] for row in table if row["kind_level_bound"] > 0]
    print("  learned vs the kind-level bound: " + ", ".join(f"{row['budget']}: {r:.1%}" for row, r in zip(table, of_bound)))
    tight = next((row for row in table if row["oracle"] > 0.5), None)
    lead = None if tight is None else (tight["learned"]["accuracy"] - tight["uniform"]["accuracy"]) * 100
    print(f"  learned >= 90% of oracle at every budget: {'met' if ninety else 'NOT met'} "
          f"(lowest {min(ratios):.1%})")
    if tight is None:
        print("  learned - uniform at the tightest budget where oracle > 50%: no such budget")
    else:
        print(f"  learned - uniform at {tight['budget']} tokens/task (tightest with oracle > 50%): "
              f"{lead:+.1f} points (target >= +10): {'met' if lead >= 10 else 'NOT met'}")
    return {"ninety_percent": ninety, "lowest_ratio": min(ratios), "lead_points": lead, "of_bound": of_bound,
            "lead_budget": tight["budget"] if tight else None}


def part_b(args, out: Path | None) -> dict:
    """Single questions, as ``Agent`` sees them: the give-up rule from a warm-up's records, at several values of
    a solve, against oracle stopping and the kind-level bound at the same tokens. On ``--calibrate FILE`` (a real
    model's attempt records, from ``giveup_agent --out``) the world is that model's calibrated kind instead of
    the mixed world."""
    if args.calibrate:
        world = sim.register(calibrated_world("bench-b", json.loads(Path(args.calibrate).read_text()), args.seed))
        label = f"calibrated from {args.calibrate}"
    else:
        world = sim.register(sim.mixed_world("bench-b", seed=args.seed))
        label = f"kinds {sorted(world.kinds)} equally likely"
    return single_questions(world, label, values=args.values, warmup=args.warmup, questions=args.tasks,
                            seed=args.seed, pooled=args.pooled, out=out)


def single_questions(world: sim.SimWorld, label: str, *, values, warmup: int, questions: int, seed: int,
                     pooled: bool = False, n: int = 8, out: Path | None = None) -> dict:
    """The single-question study of part (b) on ``world`` (one kind per difficulty level, as the Agent keeps its
    records; ``pooled``: one kind for all)."""
    env = SimEnv(world, stages=1)
    warm = env.tasks(n=warmup, seed=seed + 1)
    tasks = env.tasks(n=questions, seed=seed + 2)
    records: dict[int | None, list[dict]] = {}
    for t in warm:  # one record list per kind the Agent tells apart (the task's difficulty level; --pooled: one)
        records.setdefault(None if pooled else t.difficulty, []).append(single_record(env, t, n))
    print(f"(b) {len(tasks)} single questions ({label}), rule from a warm-up of {len(warm)} questions, "
          f"{'one kind (--pooled)' if pooled else 'a kind per difficulty level'}")
    best = [run_stage_fixed(env, t, n) for t in tasks]
    first = [run_single(env, t, n, None) for t in tasks]
    bo8, ad8 = _point(best), _point(first)
    print(_fmt(f"best_of_n-{n}", bo8))
    print(_fmt(f"adaptive-{n}", ad8) + "  (no give-up)")
    stages = [known(env, t) for t in tasks]
    if pooled:  # what a rule that does not see the kinds can know: their mixture
        pooled = sim.pooled_kind(world)
        kind_priors = {("all", None): KindPosterior(pooled.components, pooled.tokens + PROMPT_TOKENS)}
        kinds_of = lambda task: ("all",)
    else:
        kind_priors = {(k, None): KindPosterior(v.components or ((1.0, v.alpha, v.beta),), v.tokens + PROMPT_TOKENS)
                       for k, v in world.kinds.items()}
        kinds_of = None
    rows = []
    for value in values:
        rules = {level: give_up_rule(kept, value, max_samples=n) for level, kept in records.items()}
        p = _point([run_single(env, t, n, rules.get(None if pooled else t.difficulty)) for t in tasks],
                   value=value)
        o_success, _ = oracle(stages, p["tokens_per_task"], max_samples=n)
        bound = kind_level_bound(tasks, kind_priors, p["tokens_per_task"], n, kinds_of) if p["tokens_per_task"] else 0
        p.update(oracle_at_same_tokens=o_success, of_oracle=p["accuracy"] / o_success if o_success else 1.0,
                 kind_level_bound=bound)
        rows.append(p)
        print(_fmt(f"give-up, value {value:.0f}", p) + f"  at the same tokens: oracle stopping {o_success:.3f} "
              f"({p['of_oracle']:.1%}), kind-level bound {bound:.3f}")
    worst = min(rows, key=lambda p: p["of_oracle"])
    print(f"  give-up within 5% of oracle stopping at every value: {'met' if worst['of_oracle'] >= 0.95 else 'NOT met'}"
          f" (lowest {worst['of_oracle']:.1%} at value {worst['value']:.0f})")
    close = [p for p in rows if p["accuracy"] >= bo8["accuracy"] - 0.03]
    if close:  # the measure: tokens at equal accuracy (within 3 points of best-of-n)
        chosen = min(close, key=lambda p: p["tokens_per_task"])
        print(f"  within 3 points of best-of-{n} at the fewest tokens: value {chosen['value']:.0f}, accuracy gap "
              f"{(bo8['accuracy'] - chosen['accuracy']) * 100:+.1f} points, tokens ratio "
              f"{chosen['tokens_per_task'] / bo8['tokens_per_task']:.2f}")
    oracle_points = oracle_curve(env, tasks, 20, bo8["tokens_per_task"], n)
    named = {f"best_of_n-{n}": [bo8], f"adaptive-{n}": [ad8], "give-up": rows}
    summary = curves.summarize(named, oracle_points, reach=(0.5, 0.55))
    if out:
        curves.plot(named, out / "b_accuracy_vs_tokens.png", oracle=oracle_points,
                    title="(b) simulator, single questions")
    return {"world": label, "best_of_n": bo8, "adaptive": ad8, "give_up": rows, "summary": summary,
            "lowest_of_oracle": worst["of_oracle"]}


def calibrated_world(name: str, attempts: list[dict], seed: int) -> sim.SimWorld:
    """A world of one kind, a real model's: the hierarchical posterior of its attempt records (the
    predictive distribution of a new question's success rate) and its tokens per sample."""
    observations = [(int(r["samples"]), int(r.get("successes", bool(r.get("success"))))) for r in attempts]
    posterior = fit_posterior(observations, record_tokens(attempts) or 64)
    kind = sim.SimKind.mixture(posterior.components, max(int(posterior.tokens) - PROMPT_TOKENS, 1))
    return sim.SimWorld(name, kinds={"real": kind}, seed=seed)


def single_record(env: SimEnv, task, n: int) -> dict:
    """A warm-up question's attempt record (adaptive-n, no give-up: first success stops), as the Agent keeps it."""
    kind, stage_id = task.metadata["kinds"][0], task.metadata["stage_ids"][0]
    answers, verified = [], []
    for k in range(n):
        answer, right = env.world.sample(stage_id, kind, k)
        answers.append(answer)
        verified.append(right)
        if right:
            break
    return {"samples": len(verified), "successes": sum(verified), "pattern": sample_pattern(answers, verified),
            "spent": {"tokens": len(verified) * sample_cost(env.world, kind)}}


def run_single(env: SimEnv, task, n: int, rule: dict | None) -> Outcome:
    """adaptive-n on one question, as the solve graph runs it (waves of one, first success stops), with the
    give-up ``rule`` deciding after every failed sample (None: no give-up)."""
    kind, stage_id = task.metadata["kinds"][0], task.metadata["stage_ids"][0]
    cost, keys, reasons = sample_cost(env.world, kind), [], []
    if rule is not None and not decide_wave(rule, 0, wave=1).go:  # not even the first sample pays
        return Outcome(False, 0, reasons=[decide_wave(rule, 0, wave=1).reason(0)])
    for k in range(n):
        answer, right = env.world.sample(stage_id, kind, k)
        if right:
            return Outcome(True, (k + 1) * cost)
        keys.append(answer)
        if rule is not None and k + 1 < n:
            share = repeat_share(sample_pattern(keys, [False] * len(keys)).split(","))
            wave = decide_wave(rule, k + 1, tokens_per_sample=cost, repeats=share)
            if not wave.go:
                reasons.append(wave.reason(k + 1))
                return Outcome(False, (k + 1) * cost, reasons=reasons)
    return Outcome(False, n * cost, reasons=reasons)


def run_stage_fixed(env: SimEnv, task, n: int) -> Outcome:
    """best-of-n with a checker: n samples drawn whatever happens; right if any is."""
    kind, stage_id = task.metadata["kinds"][0], task.metadata["stage_ids"][0]
    right = any(env.world.sample(stage_id, kind, k)[1] for k in range(n))
    return Outcome(right, n * sample_cost(env.world, kind))


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
    parser.add_argument("--values", default="250,500,1000,2000,4000,8000",
                        help="(b) what a verified answer is worth, in tokens (the give-up rule's value), comma-separated")
    parser.add_argument("--pooled", action="store_true",
                        help="(b) one kind for every question (an environment without difficulty levels)")
    parser.add_argument("--calibrate", help="(b) a JSON list of a real model's attempt records (giveup_agent --out): "
                                            "the world is that model's calibrated kind")
    parser.add_argument("--graph-tasks", type=int, default=200)
    parser.add_argument("--graph-budget", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for results.json and the plots")
    args = parser.parse_args()
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.values = [float(v) for v in args.values.split(",")]
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
