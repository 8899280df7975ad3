"""Does experience pay? The same task streams with memory off, a fixed 2-shot prompt, and memory on (not a test).

    python -m seasoned.benchmarks.experience                      # all streams, the embedded model
    python -m seasoned.benchmarks.experience --streams addition --tasks 100 --seed N
    python -m seasoned.benchmarks.experience --model scripted/... # any litellm model string

Three arms per stream, on the same tasks, sampling and answer check, and the same give-up setting
(``--give-up``, explicit in every arm):

- ``off``: no memory;
- ``static``: no memory, two fixed hand-written demonstrations as earlier turns (``static_shots``:
  ``a + b = c`` / ``Answer: c`` for additions): a good prompt, the bar memory must beat;
- ``on``: memory, from empty; it learns from its own verified successes as the stream goes (demonstrations,
  notes, the channel bandit, a cold start that samples more until it has demonstrations, and for local
  models LoRA adapters trained in the background every ``SEASONED_TRAIN_EVERY`` verified replies; the
  stream waits for a training to end unless ``--no-wait-training``, and reports its time).

Streams and targets:

- (a) ``addition``: two-digit additions in order, ``single``. Memory on >= static + 10 points, and its last
  50 >= 3x memory off's.
- (c) ``addition-adaptive``: the same with ``adaptive-8``. Tokens per solved task with memory <= 1/2 of
  without, at no lower success.
- (d) ``sums``: multi-stage tasks (several additions each). Memory on >= memory off + 10 points.
- (e) ``humaneval``: the first problems in a fixed order, ``single``. Figures only.

For each stream the channel the bandit settled on (most used over the last ``tail`` tasks) and its final
posterior are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from seasoned.settings import settings

from .stats import wilson

SEED = 2026  # default question seed (distinct from the tests' (0) and the demo's); pass fresh ones with --seed
ARMS = ("off", "static", "on")


ADDITION_PROMPT = "What is {a} + {b}?\nGive the final answer on the last line as: Answer: <number>"
SUMS_PROMPT = ("Answer each question:\n1. What is {a} + {b}?\n2. What is {c} + {d}?\n"
               "End with one line per question: Answer: <number>")
HUMANEVAL_PROMPT = ("Complete the following Python function. Reply with the complete function in one ```python code "
                    "block.\n\n```python\ndef {name}({args}):\n    \"\"\"{doc}\"\"\"\n```")


def static_shots(env: str) -> list[dict]:
    """Two fixed, hand-written demonstrations for an environment (the static few-shot arm): a good prompt,
    the bar that memory must beat. Additions are ``a + b = c`` / ``Answer: c``, as in the issue's probe."""
    if env == "addition":
        return [{"task": ADDITION_PROMPT.format(a=a, b=b), "reply": f"{a} + {b} = {a + b}\nAnswer: {a + b}"}
                for a, b in ((23, 45), (68, 17))]
    if env == "sums":
        return [{"task": SUMS_PROMPT.format(a=a, b=b, c=c, d=d),
                 "reply": f"{a} + {b} = {a + b}\nAnswer: {a + b}\n{c} + {d} = {c + d}\nAnswer: {c + d}"}
                for a, b, c, d in ((23, 45, 7, 8), (316, 52, 68, 17))]
    if env == "humaneval":
        shots = [("add", "x, y", "Return the sum of x and y.", "return x + y"),
                 ("count_vowels", "s", "Return how many letters of s are vowels (a, e, i, o, u).",
                  "return sum(ch in 'aeiou' for ch in s.lower())")]
        return [{"task": HUMANEVAL_PROMPT.format(name=name, args=args, doc=doc),
                 "reply": f"```python\ndef {name}({args}):\n    {body}\n```"} for name, args, doc, body in shots]
    raise ValueError(f"no static demonstrations for environment {env!r}")


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
    "humaneval": Stream("humaneval", "humaneval", "single", 20, tail=10),
}


@dataclass
class Arm:
    passed: list[bool] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    cache_hits: int = 0
    seconds: float = 0.0
    training_seconds: float = 0.0  # waited for adapter trainings (inside ``seconds``)
    posterior: list[dict] = field(default_factory=list)
    adapters: list[dict] = field(default_factory=list)

    def summary(self, tail: int) -> dict:
        n, solved = len(self.passed), sum(self.passed)
        last = self.passed[-tail:]
        low, high = wilson(sum(last), len(last))
        all_low, all_high = wilson(solved, n)
        settled = Counter(self.channels[-tail:]).most_common(1)
        return {"n": n, "solved": solved, "success": solved / n if n else 0.0, "interval": [all_low, all_high],
                "last": len(last), "last_solved": sum(last), "last_interval": [low, high],
                "tokens": sum(self.tokens), "tokens_per_solved": sum(self.tokens) / solved if solved else None,
                "channels": dict(Counter(self.channels)), "settled": settled[0][0] if settled else None,
                "cache_hits": self.cache_hits, "seconds": round(self.seconds, 1),
                "training_seconds": round(self.training_seconds, 1), "posterior": self.posterior,
                "adapters": self.adapters, "passed": self.passed}


def channel_of(result, memory_on: bool) -> str:
    """The memory channel a run used ("off" without memory; per subtask for multi-stage runs)."""
    if not memory_on:
        return "off"
    if result.subtasks:
        return "+".join(sorted({(s.get("result") or {}).get("memory_channel") or "none" for s in result.subtasks}))
    return (result.memory or {}).get("channel") or "none"


def adapter_rows(bank, namespace: str) -> list[dict]:
    """The adapters a memory-on arm trained: version, status, items, seconds, peak RSS, held-out check."""
    return [{"version": a.version, "status": a.status, "train_items": a.train_items,
             "train_seconds": round(a.train_seconds, 1), "peak_rss_mb": round(a.peak_rss_mb), "check": a.check,
             "reason": a.reason} for a in reversed(bank.adapters.list(namespace=namespace))]


def run_arm(stream: Stream, model: str, arm_name: str, workdir: Path, seed: int, allocation: str = "learned",
            give_up: bool = True, wait_training: bool = True, shared_bank: Path | None = None) -> Arm:
    from seasoned.envs import get_env
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.memory import MemoryBank

    env = get_env(stream.env)
    kwargs = {"n": stream.tasks, "seed": seed}
    if stream.difficulty is not None:
        kwargs["difficulty"] = stream.difficulty
    tasks = env.tasks(**kwargs) if stream.env != "humaneval" else env.tasks(n=stream.tasks)
    bank = None
    namespace = f"bench-{stream.name}-{seed}"
    memory_on = arm_name == "on"
    if memory_on:  # one bank file per stream and seed, unless --bank shares one (namespaces stay apart)
        path = shared_bank or workdir / f"{stream.name}-{seed}-memory.db"
        bank = MemoryBank.open(f"sqlite:///{path}", namespace=namespace, chroma_path=f"{path}.chroma")
    agent = Agent(model, memory=bank, namespace=namespace, record=False, checkpoint=False,
                  strategy=parse_strategy(stream.strategy, seed=seed), allocation=allocation, give_up=give_up,
                  examples=static_shots(stream.env) if arm_name == "static" else None)
    arm = Arm()
    started = time.perf_counter()
    for index, task in enumerate(tasks):
        budget = {"max_tokens": stream.budget} if stream.budget else None
        result = agent.run(task, env=env, budget=budget)
        arm.passed.append(bool(result.verified))
        arm.tokens.append(result.spend.tokens)
        channel = channel_of(result, memory_on)
        arm.channels.append(channel)
        arm.cache_hits += bool((result.memory or {}).get("cache_hit"))
        trained = ""
        if memory_on and wait_training:
            waited = time.perf_counter()
            agent.wait_for_training()
            seconds = time.perf_counter() - waited
            arm.training_seconds += seconds
            trained = f"  (waited {seconds:.0f} s for adapter training)" if seconds > 1 else ""
        mark = "ok" if result.verified else "--"
        print(f"  [{stream.name} {arm_name:>6}] {index + 1:3d}/{len(tasks)} {mark} {result.spend.tokens:5d} tok  "
              f"channel {channel}{trained}", flush=True)
    arm.seconds = time.perf_counter() - started
    if bank is not None:
        arm.posterior = bank.channels.all(namespace)
        arm.adapters = adapter_rows(bank, namespace)
        bank.close()
    agent.close()
    return arm


def verdicts(stream: Stream, arms: dict[str, dict]) -> list[str]:
    """The stream's target, met or not, in words (every arm's figures are in the table)."""
    off, static, on = arms["off"], arms["static"], arms["on"]
    gain_static = 100 * (on["success"] - static["success"])
    reference = (f"static 2-shot {static['solved']}/{static['n']} (last {static['last']}: "
                 f"{static['last_solved']}); on - static {gain_static:+.0f} points")
    if stream.name == "addition":
        ratio = on["last_solved"] / off["last_solved"] if off["last_solved"] else float("inf")
        met = gain_static >= 10 and ratio >= 3
        return [(f"on {on['solved']}/{on['n']} vs {reference} (target >= +10); last {stream.tail}: on "
                 f"{on['last_solved']}/{on['last']} vs off {off['last_solved']}/{off['last']} ({ratio:.1f}x; target "
                 f">= 3x) -> {'MET' if met else 'NOT MET'}")]
    if stream.name == "addition-adaptive":
        a, b = on["tokens_per_solved"], off["tokens_per_solved"]
        ratio = (a / b) if a and b else None
        met = ratio is not None and ratio <= 0.5 and on["solved"] >= off["solved"]
        return [(f"tokens per solved: on {a and round(a)} vs off {b and round(b)} "
                 f"({'n/a' if ratio is None else f'{ratio:.2f}x'}; target <= 0.5x at no lower success: "
                 f"{on['solved']} vs {off['solved']}) -> {'MET' if met else 'NOT MET'}; {reference}")]
    if stream.name == "sums":
        gain = 100 * (on["success"] - off["success"])
        return [(f"success on {on['solved']}/{on['n']} vs off {off['solved']}/{off['n']} ({gain:+.0f} points; "
                 f"target >= +10) -> {'MET' if gain >= 10 else 'NOT MET'}; {reference}")]
    return [f"success on {on['solved']}/{on['n']} vs off {off['solved']}/{off['n']} (no target); {reference}"]


def cell(row: dict) -> str:
    per = row["tokens_per_solved"]
    return (f"{row['solved']}/{row['n']} (last {row['last']}: {row['last_solved']}), "
            f"{per and round(per)} tok/solved")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--streams", nargs="+", default=list(STREAMS), choices=list(STREAMS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--tasks", type=int, default=None, help="override every stream's length")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--allocation", default="learned", choices=["uniform", "difficulty", "learned"],
                        help="allocation policy of every arm (multi-stage streams)")
    parser.add_argument("--give-up", default="on", choices=["on", "off"],
                        help="the learned give-up rule, the same in every arm (adaptive streams)")
    parser.add_argument("--no-wait-training", action="store_true",
                        help="let adapter trainings run in the background while the stream goes on")
    parser.add_argument("--train-every", type=int, default=None,
                        help="SEASONED_TRAIN_EVERY for this run: an adapter every N new verified replies (0: none)")
    parser.add_argument("--bank", type=Path, default=None,
                        help="a SQLite file the memory-on arms share across runs (each stream and seed its own "
                             "namespace): later namespaces start from the channel counts pooled from earlier ones")
    parser.add_argument("--out", default="experience.json", help="where to write the figures (JSON)")
    args = parser.parse_args(argv)
    give_up = args.give_up == "on"
    if args.train_every is not None:
        os.environ["SEASONED_TRAIN_EVERY"] = str(args.train_every)  # read live by the settings
    report: dict = {"model": args.model, "seed": args.seed, "allocation": args.allocation, "give_up": give_up,
                    "train_every": settings().train_every, "streams": {}}
    with tempfile.TemporaryDirectory(prefix="seasoned-experience-") as tmp:
        for name in args.streams:
            stream = STREAMS[name]
            if args.tasks:
                stream = Stream(**{**stream.__dict__, "tasks": args.tasks, "tail": min(stream.tail, args.tasks)})
            print(f"== {name}: {stream.tasks} tasks, {stream.strategy}, seed {args.seed}, give-up "
                  f"{args.give_up}, arms {', '.join(args.arms)}", flush=True)
            arms = {arm: run_arm(stream, args.model, arm, Path(tmp), args.seed, args.allocation, give_up,
                                 not args.no_wait_training, args.bank).summary(stream.tail) for arm in args.arms}
            lines = verdicts(stream, arms) if set(ARMS) <= set(arms) else []
            report["streams"][name] = {**arms, "verdict": lines}
            for line in lines:
                print(f"   {name}: {line}", flush=True)
            if "on" in arms:
                on = arms["on"]
                print(f"   {name}: memory-on settled on {on['settled']} (last {on['last']}); channels {on['channels']}; "
                      f"posterior {on['posterior']}; cache hits {on['cache_hits']}; adapters {on['adapters']}; "
                      f"{on['seconds']} s ({on['training_seconds']} s waiting for training)", flush=True)
            Path(args.out).write_text(json.dumps(report, indent=2))
    labels = [f"memory {a}" if a != "static" else "static 2-shot" for a in args.arms]
    print("\n| stream | " + " | ".join(labels) + " | target |\n|" + "---|" * (len(args.arms) + 2))
    for name, row in report["streams"].items():
        print(f"| {name} | " + " | ".join(cell(row[a]) for a in args.arms) + f" | {'; '.join(row['verdict'])} |")
    return report


if __name__ == "__main__":
    main()
