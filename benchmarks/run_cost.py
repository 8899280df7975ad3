"""Framework cost per run: CPU time of one whole ``Agent`` run against an instant scripted model.

    python -m seasoned.benchmarks.run_cost [--runs 200] [--warmup 20] [--profile-runs 100]

For ``single`` and ``best_of_n-4``, each in three set-ups:

- ``bare``: ``Agent(record=False, checkpoint=False)``: the graph, the gateway and the result only;
- ``recorded``: the run store writes the run, its events, candidates, verdicts and calls (SQLite);
- ``recorded+ckpt``: also LangGraph checkpoints in SQLite (what ``seasoned run`` and the server do).

CPU time is ``time.process_time`` (every thread, e.g. a checkpointer's connection thread where there is one),
per run, after ``--warmup`` runs. The six arms take turns in ``--rounds`` rounds (so a change in the machine's
load hits them alike) and each arm's figure is the median of its rounds. Targets (issue 24): ``single``
recorded+ckpt <= 10 ms, ``best_of_n-4`` recorded+ckpt <= 20 ms.

To compare with an older commit, run this file against a checkout of it (the package is the checkout)::

    git worktree add /tmp/lean-base <commit> && mkdir -p /tmp/lean-pkg && ln -sfn /tmp/lean-base /tmp/lean-pkg/seasoned
    PYTHONPATH=/tmp/lean-pkg .venv/bin/python benchmarks/run_cost.py

Then one cProfile per strategy (recorded+ckpt) says where the main thread's time goes, by area: each
function's own time is charged to its file's area (LangGraph, checkpoints, SQL, pydantic, litellm, the
run store, the rest of seasoned); time spent in the standard library (asyncio, json, copy...) or in C
builtins is charged to the areas that called it, in proportion to the calls' time. "other threads" is the
CPU the profile cannot see (process time minus the main thread's).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("SEASONED_HOME", tempfile.mkdtemp(prefix="seasoned-run-cost-"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import seasoned.graphs
from seasoned.graphs import Agent
from seasoned.models import scripted
from seasoned.settings import settings

STRATEGIES = ("single", "best_of_n-4")
SETUPS = {"bare": {"record": False, "checkpoint": False},
          "recorded": {"record": True, "checkpoint": False},
          "recorded+ckpt": {"record": True, "checkpoint": True}}
TARGETS_MS = {"single": 10.0, "best_of_n-4": 20.0}  # recorded+ckpt
TASK = "What is 17 + 25?"
ROOT = Path(seasoned.graphs.__file__).resolve().parent.parent  # the seasoned package measured (a checkout's root)
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def make_agent(strategy: str, setup: str, home: Path) -> Agent:
    scripted.register("run-cost", fn=lambda messages, params: "17 + 25 = 42.\nAnswer: 42")
    return Agent("scripted/run-cost", strategy=strategy, db_url=f"sqlite:///{home}/{setup}-{strategy}.db",
                 **SETUPS[setup])


async def cpu_per_run(agent: Agent, runs: int) -> dict:
    """CPU (all threads, main thread) and wall milliseconds per run over ``runs`` runs."""
    cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    for _ in range(runs):
        result = await agent.arun(TASK)
    assert result.answer == "42", result
    return {"cpu_ms": (time.process_time() - cpu) / runs * 1000,
            "main_thread_ms": (time.thread_time() - thread) / runs * 1000,
            "wall_ms": (time.perf_counter() - wall) / runs * 1000}


async def measure(strategies: list[str], runs: int, warmup: int, rounds: int, home: Path) -> dict:
    """Each arm's median over ``rounds`` interleaved rounds of ``runs // rounds`` runs."""
    agents = {(strategy, setup): make_agent(strategy, setup, home) for strategy in strategies for setup in SETUPS}
    for agent in agents.values():
        for _ in range(warmup):
            await agent.arun(TASK)
    per_round: dict = {arm: [] for arm in agents}
    for _ in range(rounds):
        for arm, agent in agents.items():
            per_round[arm].append(await cpu_per_run(agent, max(1, runs // rounds)))
    for agent in agents.values():
        await agent.aclose()
    return {arm: {key: statistics.median(r[key] for r in figures) for key in figures[0]}
            for arm, figures in per_round.items()}


async def profiled(agent: Agent, runs: int, warmup: int) -> tuple[pstats.Stats, float, float]:
    for _ in range(warmup):
        await agent.arun(TASK)
    profile = cProfile.Profile(time.thread_time)  # CPU of this thread: waiting is not cost
    cpu, thread = time.process_time(), time.thread_time()
    profile.enable()
    for _ in range(runs):
        await agent.arun(TASK)
    profile.disable()
    return pstats.Stats(profile), (time.process_time() - cpu) / runs, (time.thread_time() - thread) / runs


# --- where the time goes ------------------------------------------------------------------------------
def area_of(filename: str, name: str) -> str | None:
    """The area a function belongs to, or None for the standard library and builtins (charged to callers)."""
    if filename == "~":  # a C builtin: a few belong to an area by their type
        if "sqlite3" in name:
            return "SQL (SQLAlchemy, sqlite3)"
        if "pydantic" in name:
            return "pydantic"
        return None
    path = filename.replace("\\", "/")
    for marker, area in (("/langgraph/checkpoint", "checkpoints (LangGraph saver, serde)"),
                         ("/aiosqlite/", "checkpoints (LangGraph saver, serde)"), ("/ormsgpack", "checkpoints (LangGraph saver, serde)"),
                         ("/langgraph/", "LangGraph (pregel, channels)"), ("/langchain_core/", "LangGraph (pregel, channels)"),
                         ("/sqlalchemy/", "SQL (SQLAlchemy, sqlite3)"), ("/sqlite3/", "SQL (SQLAlchemy, sqlite3)"),
                         ("/pydantic", "pydantic"), ("/litellm/", "litellm"), ("/httpx/", "litellm"),
                         ("/openai/", "litellm")):
        if marker in path:
            return area
    if path.startswith(str(ROOT) + "/") and "/site-packages/" not in path:
        part = path[len(str(ROOT)) + 1:].split("/")[0]
        return {"runs": "seasoned runs/ (run store)", "graphs": "seasoned graphs/ (our graph code, events)",
                "models": "seasoned models/ (gateway, ledger)"}.get(part, f"seasoned {part}/")
    if "/site-packages/" in path:
        return "other libraries"
    return None


def by_area(stats: pstats.Stats) -> dict[str, float]:
    """Seconds per area: own time of area functions, plus stdlib/builtin time charged up to their callers."""
    raw = stats.stats  # type: ignore[attr-defined]
    areas: dict[str, float] = defaultdict(float)

    def charge(func: tuple, seconds: float, depth: int = 0) -> None:
        area = area_of(func[0], func[2])
        if area is not None:
            areas[area] += seconds
            return
        callers = raw.get(func, (0, 0, 0, 0, {}))[4]
        weights = {caller: edge[3] for caller, edge in callers.items() if edge[3] > 0}
        total = sum(weights.values())
        if depth > 30 or not total:
            areas["event loop, stdlib (no caller in an area)"] += seconds
            return
        for caller, weight in weights.items():
            charge(caller, seconds * weight / total, depth + 1)

    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if tottime > 0:
            charge(func, tottime)
    return dict(areas)


def report_profile(label: str, stats: pstats.Stats, cpu_s: float, main_s: float, runs: int,
                   main_ms: float) -> None:
    """Shares of the main thread's CPU per area; ``main_ms``: the unprofiled main-thread CPU per run, which
    the shares are applied to (the profiler itself slows every function call down)."""
    areas = by_area(stats)
    profiled_s = sum(areas.values())
    print(f"\nwhere the time goes: {label}, recorded+ckpt, {runs} runs under cProfile ({cpu_s * 1000:.1f} ms "
          f"CPU/run with the profiler on); share of the main thread's CPU, and that share of {main_ms:.2f} ms")
    for area, seconds in sorted(areas.items(), key=lambda item: -item[1]):
        share = seconds / profiled_s
        print(f"  {area:<48} {share:6.1%}  ~{share * main_ms:5.2f} ms/run")
    print(f"  {'other threads (e.g. a checkpointer thread)':<48} {(cpu_s - main_s) * 1000:7.2f} ms/run CPU "
          "(profiled)")
    print("  heaviest functions by cumulative time (ms/run):")
    raw = stats.stats  # type: ignore[attr-defined]
    interesting = [(ct, func) for func, (_cc, _nc, _tt, ct, _c) in raw.items()
                   if area_of(func[0], func[2]) not in (None, "seasoned benchmarks/") and func[0] != "~"
                   and func[2] not in ("arun", "astream")]
    for ct, (filename, line, name) in sorted(interesting, reverse=True)[:14]:
        short = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "seasoned/")
        print(f"    {ct / runs * 1000:7.2f}  {name} ({short}:{line})")


async def profile_one(strategy: str, runs: int, warmup: int, home: Path) -> tuple[pstats.Stats, float, float]:
    agent = make_agent(strategy, "recorded+ckpt", home)
    try:
        return await profiled(agent, runs, warmup)
    finally:
        await agent.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="measured runs per strategy and set-up")
    parser.add_argument("--warmup", type=int, default=20, help="runs before measuring (imports, caches, tables)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the figure is their median)")
    parser.add_argument("--profile-runs", type=int, default=100, help="runs under cProfile (0: no profile)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    home = settings().home
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]

    figures = asyncio.run(measure(strategies, args.runs, args.warmup, args.rounds, home))
    load = os.getloadavg()[0]
    print(f"CPU per run, instant scripted model ({args.runs} runs per arm in {args.rounds} interleaved rounds, "
          f"median; {args.warmup} warm-up; load average {load:.1f} on {os.cpu_count()} cores; "
          f"Python {sys.version.split()[0]}; package {ROOT})")
    print(f"  {'strategy':<13} {'set-up':<15} {'CPU ms/run':>10} {'main thread':>12} {'wall ms/run':>12}")
    for (strategy, setup), f in figures.items():
        target = TARGETS_MS.get(strategy) if setup == "recorded+ckpt" else None
        verdict = "" if target is None else f"  target <= {target:.0f} ms: {'met' if f['cpu_ms'] <= target else 'NOT met'}"
        print(f"  {strategy:<13} {setup:<15} {f['cpu_ms']:10.2f} {f['main_thread_ms']:12.2f} {f['wall_ms']:12.2f}{verdict}")

    if args.profile_runs > 0:
        for strategy in strategies:
            stats, cpu_s, main_s = asyncio.run(profile_one(strategy, args.profile_runs, args.warmup, home))
            report_profile(strategy, stats, cpu_s, main_s, args.profile_runs,
                           figures[(strategy, "recorded+ckpt")]["main_thread_ms"])


if __name__ == "__main__":
    main()
