"""The README's main job (``make demo`` / ``seasoned demo``): does experience pay, on this model?

One task stream runs twice on the embedded model, with the same tasks and seeds: first with memory
off, then with memory on. The stream is two-digit additions in which questions recur (as they do in
real use: a share of the stream repeats earlier questions), so kinds of tasks recur and some tasks
recur exactly. With memory on, every verified answer becomes a *demonstration* (replayed to the model
as an earlier chat turn on similar tasks, which a small model uses far better than prose), a repeated
question is answered from its verified answer after a re-check, and a bandit learns which form of
memory pays. The console shows, for every task, the channel chosen and why and the demonstrations
given; the summary states the difference with counts and 95% intervals; the plot shows both curves.
It stays honest: if memory does not help on a run, the figures and the plot say so.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from seasoned.models import seasoned_home

NAMESPACE = "demo"


def stream_tasks(n: int, seed: int, repeat: float) -> list:
    """``n`` two-digit additions in which about ``repeat`` of the stream repeats earlier questions."""
    from seasoned.envs import get_env

    fresh = get_env("addition").tasks(n=n, seed=seed, difficulty=2)
    rng = random.Random(seed)
    stream = []
    for index in range(n):
        if stream and rng.random() < repeat:
            stream.append(rng.choice(stream))
        else:
            stream.append(fresh[index])
    return stream


def _rolling(passed: list[bool], window: int) -> list[float]:
    return [sum(passed[max(0, i - window + 1): i + 1]) / len(passed[max(0, i - window + 1): i + 1])
            for i in range(len(passed))]


def _plot(path: Path, off: dict, on: dict) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    n = len(on["passed"])
    window = max(2, min(10, n // 3))
    xs = list(range(1, n + 1))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    top.plot(xs, _rolling(off["passed"], window), marker="o", markersize=3, label="memory off", color="tab:gray")
    top.plot(xs, _rolling(on["passed"], window), marker="s", markersize=3, linestyle="--", label="memory on",
             color="tab:green")
    top.set_ylabel(f"success (last {window} tasks)")
    top.set_ylim(-0.05, 1.05)
    top.legend(loc="upper left")
    width = 0.4
    bottom.bar([x - width / 2 for x in xs], off["tokens"], width, color="tab:gray", label="memory off")
    bottom.bar([x + width / 2 for x in xs], on["tokens"], width, color="tab:green", label="memory on")
    bottom.set_ylabel("tokens per task")
    bottom.set_xlabel("task in the stream")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.legend(loc="upper right")
    figure.suptitle(f"seasoned demo: the same {n} tasks with memory off and on")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _show_memory(data: dict, console: Console, bank) -> None:
    line = f"  memory: channel [bold]{data.get('channel')}[/bold] [dim]({data.get('reason')})[/dim]"
    console.print(line)
    from seasoned.memory import ItemNotFound

    for item_id in data.get("demos") or []:
        try:
            item = bank.get(item_id, namespace=NAMESPACE)
        except ItemNotFound:  # deleted meanwhile (e.g. by the admin tool)
            continue
        first = (item.data or {}).get("task", item.title).splitlines()[0]
        reply = " ".join(((item.data or {}).get("reply") or "").split())[:60]
        console.print(f"    demonstration: {first} -> {reply}", markup=False, highlight=False)
    if data.get("cached"):
        console.print("    a verified answer to this very question is stored: re-checking it first")


def run_arm(model: str | None, stream: list, memory_on: bool, seed: int, strategy: str, budget: int | None,
            console: Console, keep_memory: bool = False) -> dict:
    """One pass over the stream; returns passed/tokens per task and the channels used."""
    from seasoned.envs import get_env
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.memory import MemoryBank

    env = get_env("addition")
    bank = None
    if memory_on:
        bank = MemoryBank.open(namespace=NAMESPACE)
        if not keep_memory:
            for item in bank.list(limit=100_000, kinds=None):
                bank.delete(item.id, hard=True)
            bank.channels.reset(NAMESPACE)
    agent = Agent(model, memory=bank, namespace=NAMESPACE, strategy=parse_strategy(strategy, seed=seed))
    arm = {"passed": [], "tokens": [], "channels": [], "cache_hits": 0, "runs": []}
    label = "memory on" if memory_on else "memory off"
    for index, task in enumerate(stream, 1):
        console.rule(f"{label}: task {index}/{len(stream)}")
        console.print(task.prompt.splitlines()[0], markup=False, highlight=False)
        result = None
        budget_spec = {"max_tokens": budget} if budget else None
        for event in agent.stream(task, env=env, budget=budget_spec):
            if event.kind == "result":
                result = event.data["result"]
            elif event.kind == "memory" and bank is not None:
                _show_memory(event.data, console, bank)
        memory = result.memory or {}
        arm["passed"].append(bool(result.verified))
        arm["tokens"].append(result.spend.tokens)
        arm["channels"].append(memory.get("channel") or "off")
        arm["cache_hits"] += bool(memory.get("cache_hit"))
        arm["runs"].append(result.run_id)
        how = " (cached answer re-checked)" if memory.get("cache_hit") else ""
        console.print(f"  => answer {result.answer!r}: {'[green]solved[/green]' if result.verified else '[red]not solved[/red]'}"
                      f"{how}, {result.spend.tokens} tokens  [dim](seasoned runs show {result.run_id})[/dim]")
    if bank is not None:
        arm["memory"] = bank.stats(namespace=NAMESPACE)
        arm["posterior"] = bank.channels.all(NAMESPACE)
        bank.close()
    agent.close()
    return arm


def run(model: str | None = None, tasks: int = 30, seed: int = 0, strategy: str = "adaptive-4",
        budget: int | None = None, repeat: float = 0.3, keep_memory: bool = False,
        console: Console | None = None) -> dict:
    """Run the stream with memory off, then on, and return the summary."""
    from seasoned.benchmarks.stats import wilson

    console = console or Console()
    home = seasoned_home() / "demo"
    home.mkdir(parents=True, exist_ok=True)
    stream = stream_tasks(tasks, seed, repeat)
    repeats = len(stream) - len({t.id for t in stream})
    console.print(f"[bold]seasoned demo[/bold]: {tasks} two-digit additions ({repeats} repeat earlier ones), "
                  f"strategy {strategy}, run twice on the same tasks and seeds: memory off, then memory on "
                  f"(namespace {NAMESPACE!r})")
    started = time.perf_counter()
    off = run_arm(model, stream, False, seed, strategy, budget, console)
    on = run_arm(model, stream, True, seed, strategy, budget, console, keep_memory)

    def line(arm: dict) -> dict:
        solved, n = sum(arm["passed"]), len(arm["passed"])
        low, high = wilson(solved, n)
        half = n // 2
        late = arm["passed"][half:]
        return {"solved": solved, "n": n, "interval": [round(low, 3), round(high, 3)],
                "second_half": f"{sum(late)}/{len(late)}", "tokens": sum(arm["tokens"]),
                "tokens_per_solved": round(sum(arm["tokens"]) / solved) if solved else None}

    summary = {"tasks": tasks, "repeats": repeats, "strategy": strategy, "off": line(off), "on": line(on),
               "cache_hits": on["cache_hits"], "channels": {c: on["channels"].count(c) for c in set(on["channels"])},
               "posterior": on.get("posterior"), "memory_items": (on.get("memory") or {}).get("active"),
               "seconds": round(time.perf_counter() - started, 1)}
    plot = _plot(home / "stream.png", off, on)
    summary["plot"] = str(plot) if plot else None
    table = Table(title="the same stream, memory off vs on")
    for column in ("", "solved", "95% interval", "second half", "tokens", "tokens/solved"):
        table.add_column(column)
    for name in ("off", "on"):
        row = summary[name]
        table.add_row(f"memory {name}", f"{row['solved']}/{row['n']}",
                      f"{row['interval'][0]:.0%}-{row['interval'][1]:.0%}", row["second_half"], str(row["tokens"]),
                      str(row["tokens_per_solved"] or "n/a"))
    console.print(table)
    diff = summary["on"]["solved"] - summary["off"]["solved"]
    verdict = ("memory helped" if diff > 0 else "memory did not help on this run" if diff == 0
               else "memory hurt on this run")
    console.print(f"{verdict}: {summary['on']['solved']}/{tasks} solved with memory vs {summary['off']['solved']}/{tasks} "
                  f"without ({diff:+d}); {summary['cache_hits']} repeated question(s) answered from a re-checked "
                  f"verified answer; channels used {summary['channels']}; {summary['seconds']}s")
    if plot:
        console.print(f"plot: {plot}")
    console.print(f"inspect the memory: seasoned-admin --namespace {NAMESPACE} list   "
                  f"(or: seasoned-admin --namespace {NAMESPACE} stats)")
    return summary
