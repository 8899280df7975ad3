"""Does experience pay? The same task streams with memory off and on, on the same model (not a test).

    python -m seasoned.benchmarks.experience                      # all streams, the embedded model
    python -m seasoned.benchmarks.experience --streams addition --tasks 100
    python -m seasoned.benchmarks.experience --model scripted/... # any litellm model string

Streams (question seeds distinct from the tests' and the demo's):

- ``addition``: two-digit additions in order, ``single`` (one sample each). Target: success over the
  last 50 with memory at least 2x without, Wilson intervals not overlapping.
- ``addition-adaptive``: the same stream with ``adaptive-8``. Target: tokens per solved task with
  memory at most 1/2 of without, at no lower success.
- ``sums``: multi-stage tasks (several additions each). Target: memory on >= memory off + 10 points.
- ``humaneval``: the first problems in a fixed order, ``single``. Figures only.

Each arm starts from an empty memory; memory on learns from its own verified successes as the stream
goes (demonstrations, distilled notes, the channel bandit). The bandit's final posterior is printed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .stats import wilson

SEED = 2026  # question seed: distinct from the tests' (0) and the demo's


@dataclass
class Stream:
    name: str
    env: str
    strategy: str
    tasks: int
    difficulty: int | None = None
    budget: int | None = None
    tail: int = 50  # the "last N" window the target reads


STREAMS = {
    "addition": Stream("addition", "addition", "single", 100, difficulty=2),
    "addition-adaptive": Stream("addition-adaptive", "addition", "adaptive-8", 100, difficulty=2),
    "sums": Stream("sums", "sums", "adaptive-8", 50, budget=800, tail=25),
    "humaneval": Stream("humaneval", "humaneval", "single", 40, tail=20),
}


@dataclass
class Arm:
    passed: list[bool] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    cache_hits: int = 0
    seconds: float = 0.0
    posterior: list[dict] = field(default_factory=list)

    def summary(self, tail: int) -> dict:
        n, solved = len(self.passed), sum(self.passed)
        last = self.passed[-tail:]
        low, high = wilson(sum(last), len(last))
        all_low, all_high = wilson(solved, n)
        return {"n": n, "solved": solved, "success": solved / n if n else 0.0, "interval": [all_low, all_high],
                "last": len(last), "last_solved": sum(last), "last_interval": [low, high],
                "tokens": sum(self.tokens), "tokens_per_solved": sum(self.tokens) / solved if solved else None,
                "channels": {c: self.channels.count(c) for c in sorted(set(self.channels))},
                "cache_hits": self.cache_hits, "seconds": round(self.seconds, 1), "posterior": self.posterior}


def run_arm(stream: Stream, model: str, memory_on: bool, workdir: Path, seed: int,
            allocation: str = "learned") -> Arm:
    from seasoned.envs import get_env
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.memory import MemoryBank

    env = get_env(stream.env)
    kwargs = {"n": stream.tasks, "seed": seed}
    if stream.difficulty is not None:
        kwargs["difficulty"] = stream.difficulty
    tasks = env.tasks(**kwargs) if stream.env != "humaneval" else env.tasks(n=stream.tasks)
    bank = None
    namespace = f"bench-{stream.name}"
    if memory_on:
        path = workdir / f"{stream.name}-memory.db"
        bank = MemoryBank.open(f"sqlite:///{path}", namespace=namespace, chroma_path=str(workdir / f"{stream.name}.chroma"))
    agent = Agent(model, memory=bank, namespace=namespace, record=False, checkpoint=False,
                  strategy=parse_strategy(stream.strategy, seed=seed), allocation=allocation)
    arm = Arm()
    started = time.perf_counter()
    for index, task in enumerate(tasks):
        budget = {"max_tokens": stream.budget} if stream.budget else None
        result = agent.run(task, env=env, budget=budget)
        arm.passed.append(bool(result.verified))
        arm.tokens.append(result.spend.tokens)
        channel = (result.memory or {}).get("channel") or ("mixed" if result.subtasks else "off")
        if result.subtasks:
            used = sorted({(s.get("result") or {}).get("memory_channel") or "none" for s in result.subtasks})
            channel = "+".join(used) if memory_on else "off"
        arm.channels.append(channel)
        arm.cache_hits += bool((result.memory or {}).get("cache_hit"))
        mark = "ok" if result.verified else "--"
        print(f"  [{stream.name} memory {'on ' if memory_on else 'off'}] {index + 1:3d}/{len(tasks)} {mark} "
              f"{result.spend.tokens:5d} tok  channel {channel}", flush=True)
    arm.seconds = time.perf_counter() - started
    if bank is not None:
        arm.posterior = bank.channels.all(namespace)
        bank.close()
    agent.close()
    return arm


def verdicts(stream: Stream, off: dict, on: dict) -> list[str]:
    """The stream's target, met or not, in words."""
    if stream.name == "addition":
        ratio = on["last_solved"] / off["last_solved"] if off["last_solved"] else float("inf")
        apart = on["last_interval"][0] > off["last_interval"][1]
        return [(f"last {stream.tail}: on {on['last_solved']}/{on['last']} vs off {off['last_solved']}/{off['last']} "
                 f"({ratio:.1f}x; target >= 2x) intervals {'apart' if apart else 'overlap'} -> "
                 f"{'MET' if ratio >= 2 and apart else 'NOT MET'}")]
    if stream.name == "addition-adaptive":
        a, b = on["tokens_per_solved"], off["tokens_per_solved"]
        ratio = (a / b) if a and b else None
        met = ratio is not None and ratio <= 0.5 and on["solved"] >= off["solved"]
        return [(f"tokens per solved: on {a and round(a)} vs off {b and round(b)} "
                 f"({'n/a' if ratio is None else f'{ratio:.2f}x'}; target <= 0.5x at no lower success: "
                 f"{on['solved']} vs {off['solved']}) -> {'MET' if met else 'NOT MET'}")]
    if stream.name == "sums":
        gain = 100 * (on["success"] - off["success"])
        return [(f"success on {on['solved']}/{on['n']} vs off {off['solved']}/{off['n']} ({gain:+.0f} points; "
                 f"target >= +10) -> {'MET' if gain >= 10 else 'NOT MET'}")]
    return [f"success on {on['solved']}/{on['n']} vs off {off['solved']}/{off['n']} (no target)"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--streams", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    parser.add_argument("--tasks", type=int, default=None, help="override every stream's length")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--allocation", default="learned", choices=["uniform", "difficulty", "learned"],
                        help="allocation policy of both arms (multi-stage streams)")
    parser.add_argument("--out", default="experience.json", help="where to write the figures (JSON)")
    args = parser.parse_args(argv)
    report: dict = {"model": args.model, "seed": args.seed, "allocation": args.allocation, "streams": {}}
    with tempfile.TemporaryDirectory(prefix="seasoned-experience-") as tmp:
        for name in args.streams:
            stream = STREAMS[name]
            if args.tasks:
                stream = Stream(**{**stream.__dict__, "tasks": args.tasks, "tail": min(stream.tail, args.tasks)})
            print(f"== {name}: {stream.tasks} tasks, {stream.strategy}, memory off then on", flush=True)
            off = run_arm(stream, args.model, False, Path(tmp), args.seed, args.allocation).summary(stream.tail)
            on = run_arm(stream, args.model, True, Path(tmp), args.seed, args.allocation).summary(stream.tail)
            lines = verdicts(stream, off, on)
            report["streams"][name] = {"off": off, "on": on, "verdict": lines}
            for line in lines:
                print(f"   {name}: {line}", flush=True)
            print(f"   {name}: memory-on channels {on['channels']}; posterior {on['posterior']}", flush=True)
            Path(args.out).write_text(json.dumps(report, indent=2))
    print("\n| stream | memory off | memory on | target |\n|---|---|---|---|")
    for name, row in report["streams"].items():
        off, on = row["off"], row["on"]
        print(f"| {name} | {off['solved']}/{off['n']} (last {off['last']}: {off['last_solved']}), "
              f"{off['tokens_per_solved'] and round(off['tokens_per_solved'])} tok/solved | "
              f"{on['solved']}/{on['n']} (last {on['last']}: {on['last_solved']}), "
              f"{on['tokens_per_solved'] and round(on['tokens_per_solved'])} tok/solved | {'; '.join(row['verdict'])} |")
    return report


if __name__ == "__main__":
    main()
