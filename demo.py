"""The README's main job (``make demo`` / ``seasoned demo``): does experience pay, on this model?

One task stream runs on the embedded model with the same tasks and seeds: first with memory off, then
(as a reference) with a fixed hand-written 2-shot prompt and no memory, then with memory on. The stream
is two-digit additions in which questions recur (as they do in real use: a share of the stream repeats
earlier questions), so kinds of tasks recur and some tasks recur exactly. With memory on, every verified
answer becomes a *demonstration* (replayed to the model as an earlier chat turn on similar tasks, which a
small model uses far better than prose), a repeated question is answered from its verified answer after
a re-check, the first questions get more samples while there is nothing to show yet (cold start), and a
bandit learns which form of memory pays; for the embedded model, an adapter trained on the verified
replies joins as a channel when enough have been collected (its training time is shown). The console
shows, for every task, the channel chosen and why and the demonstrations given; the summary states the
difference with counts and 95% intervals; the plot shows the three curves. It stays honest: if memory
does not help on a run, the figures and the plot say so.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from seasoned.models import seasoned_home

NAMESPACE = "demo"
TASKS = 100  # long enough that a real gain shows as 95% intervals apart (seeds checked: README)
STRATEGY = "adaptive-4"  # up to 4 samples a question (first-finish): what memory adds per sample compounds
ARMS = {"off": "memory off", "static": "static 2-shot", "on": "memory on"}


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


def _plot(path: Path, arms: dict[str, dict]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None
    n = len(arms["on"]["passed"])
    window = max(2, min(10, n // 3))
    xs = list(range(1, n + 1))
    styles = {"off": ("o", "-", "tab:gray"), "static": ("", ":", "tab:blue"), "on": ("s", "--", "tab:green")}
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    for name, arm in arms.items():
        marker, line, color = styles[name]
        label = ARMS[name] + (" (reference: fixed prompt, no memory)" if name == "static" else "")
        top.plot(xs, _rolling(arm["passed"], window), marker=marker or None, markersize=3, linestyle=line,
                 label=label, color=color)
    top.set_ylabel(f"success (last {window} tasks)")
    top.set_ylim(-0.05, 1.05)
    top.legend(loc="upper left", fontsize="small")
    width = 0.4
    bottom.bar([x - width / 2 for x in xs], arms["off"]["tokens"], width, color="tab:gray", label="memory off")
    bottom.bar([x + width / 2 for x in xs], arms["on"]["tokens"], width, color="tab:green", label="memory on")
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


def _show_training(agent, bank, known: set[str], console: Console) -> float:
    """When curation started an adapter training after this task (every ``SEASONED_TRAIN_EVERY`` verified
    replies), say so, wait for it (the next tasks can use the adapter) and show how long it took and what
    came of it; returns the seconds waited."""
    if agent.wait_for_training(timeout=0):
        return 0.0
    console.print("  [bold]training an adapter[/bold] on the verified replies so far (LoRA, CPU); waiting for it ...")
    started = time.perf_counter()
    agent.wait_for_training()
    waited = time.perf_counter() - started
    for adapter in bank.adapters.list(namespace=NAMESPACE):
        if adapter.id in known:
            continue
        known.add(adapter.id)
        console.print(f"  [bold]adapter v{adapter.version}[/bold] trained on {adapter.train_items} verified replies in "
                      f"{adapter.train_seconds:.0f} s (waited {waited:.0f} s, peak {adapter.peak_rss_mb:.0f} MB): "
                      f"{adapter.status}" + (f" [dim]({adapter.reason})[/dim]" if adapter.reason else ""))
    return waited


def run_arm(model: str | None, stream: list, arm_name: str, seed: int, strategy: str, budget: int | None,
            console: Console, keep_memory: bool = False) -> dict:
    """One pass over the stream (``off``, ``static`` or ``on``); returns passed/tokens per task, channels used."""
    from seasoned.benchmarks.experience import static_shots
    from seasoned.envs import get_env
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.memory import MemoryBank

    env = get_env("addition")
    bank = None
    if arm_name == "on":
        bank = MemoryBank.open(namespace=NAMESPACE)
        if not keep_memory:
            for item in bank.list(limit=100_000, kinds=None):
                bank.delete(item.id, hard=True)
            for adapter in bank.adapters.list(namespace=NAMESPACE):
                bank.adapters.delete(adapter.id)
            bank.channels.reset(NAMESPACE)
    # no give-up rule in any arm: the demo measures memory alone (a rule learned per arm would differ by arm)
    agent = Agent(model, memory=bank, namespace=NAMESPACE, strategy=parse_strategy(strategy, seed=seed),
                  give_up=False, examples=static_shots("addition") if arm_name == "static" else None)
    arm = {"passed": [], "tokens": [], "channels": [], "hits": [], "runs": [], "training_seconds": 0.0}
    known = {a.id for a in bank.adapters.list(namespace=NAMESPACE)} if bank is not None else set()
    label = ARMS[arm_name]
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
        arm["hits"].append(bool(memory.get("cache_hit")))
        arm["runs"].append(result.run_id)
        how = " (cached answer re-checked)" if memory.get("cache_hit") else ""
        samples = sum(c["kind"] != "cached" for c in result.candidates)
        console.print(f"  => answer {result.answer!r}: {'[green]solved[/green]' if result.verified else '[red]not solved[/red]'}"
                      f"{how}, {samples} sample(s), {result.spend.tokens} tokens  "
                      f"[dim](seasoned runs show {result.run_id})[/dim]")
        if bank is not None:
            arm["training_seconds"] += _show_training(agent, bank, known, console)
    if bank is not None:
        arm["memory"] = bank.stats(namespace=NAMESPACE)
        arm["posterior"] = bank.channels.all(NAMESPACE)
        arm["adapters"] = len(known)
        bank.close()
    agent.close()
    return arm


def line(arm: dict) -> dict:
    """One arm's row of the summary."""
    from seasoned.benchmarks.stats import wilson

    solved, n = sum(arm["passed"]), len(arm["passed"])
    low, high = wilson(solved, n)
    late = arm["passed"][n // 2:]
    return {"solved": solved, "n": n, "interval": [round(low, 3), round(high, 3)],
            "second_half": f"{sum(late)}/{len(late)}", "tokens": sum(arm["tokens"]),
            "tokens_per_solved": round(sum(arm["tokens"]) / solved) if solved else None,
            "passed": arm["passed"], "cache_hits": sum(arm["hits"])}


def run(model: str | None = None, tasks: int = TASKS, seed: int = 0, strategy: str = STRATEGY,
        budget: int | None = None, repeat: float = 0.3, keep_memory: bool = False, static: bool = True,
        console: Console | None = None) -> dict:
    """Run the stream with memory off, the static 2-shot reference (unless ``static=False``), memory on;
    return the summary."""
    console = console or Console()
    home = seasoned_home() / "demo"
    home.mkdir(parents=True, exist_ok=True)
    stream = stream_tasks(tasks, seed, repeat)
    repeats = len(stream) - len({t.id for t in stream})
    names = [name for name in ARMS if static or name != "static"]
    console.print(f"[bold]seasoned demo[/bold]: {tasks} two-digit additions ({repeats} repeat earlier ones), "
                  f"strategy {strategy}, the same tasks and seeds {', then '.join(ARMS[n] for n in names)} "
                  f"(namespace {NAMESPACE!r}; no give-up rule in any arm: memory alone)")
    started = time.perf_counter()
    arms = {name: run_arm(model, stream, name, seed, strategy, budget, console, keep_memory) for name in names}
    on, off = line(arms["on"]), line(arms["off"])
    summary = {"tasks": tasks, "repeats": repeats, "strategy": strategy, "seed": seed,
               **{name: line(arm) for name, arm in arms.items()},
               "cache_hits": on["cache_hits"],
               "channels": {c: arms["on"]["channels"].count(c) for c in set(arms["on"]["channels"])},
               "posterior": arms["on"].get("posterior"), "memory_items": (arms["on"].get("memory") or {}).get("active"),
               "adapters": arms["on"].get("adapters", 0), "training_seconds": round(arms["on"]["training_seconds"], 1),
               "apart": on["interval"][0] > off["interval"][1], "seconds": round(time.perf_counter() - started, 1)}
    plot = _plot(home / "stream.png", arms)
    summary["plot"] = str(plot) if plot else None
    table = Table(title="the same stream, memory off vs on (static 2-shot: a fixed prompt, for reference)")
    for column in ("", "solved", "95% interval", "second half", "tokens", "tokens/solved"):
        table.add_column(column)
    for name in names:
        row = summary[name]
        table.add_row(ARMS[name], f"{row['solved']}/{row['n']}", f"{row['interval'][0]:.0%}-{row['interval'][1]:.0%}",
                      row["second_half"], str(row["tokens"]), str(row["tokens_per_solved"] or "n/a"))
    console.print(table)
    diff = on["solved"] - off["solved"]
    verdict = ("memory helped" if diff > 0 else "memory did not help on this run" if diff == 0
               else "memory hurt on this run")
    apart = ("the 95% intervals do not overlap" if summary["apart"] else
             "the 95% intervals overlap: not a clear gain on this run")
    console.print(f"{verdict}: {on['solved']}/{tasks} solved with memory vs {off['solved']}/{tasks} without ({diff:+d}; "
                  f"{apart}); {summary['cache_hits']} repeated question(s) answered from a re-checked verified "
                  f"answer; channels used {summary['channels']}; {summary['seconds']}s"
                  + (f" ({summary['training_seconds']}s training adapters)" if summary["adapters"] else ""))
    if static:
        ref = summary["static"]
        console.print(f"reference: a fixed hand-written 2-shot prompt solved {ref['solved']}/{tasks} "
                      f"({on['solved'] - ref['solved']:+d} for memory)")
    if plot:
        console.print(f"plot: {plot}")
    console.print(f"inspect the memory: seasoned-admin --namespace {NAMESPACE} list   "
                  f"(or: seasoned-admin --namespace {NAMESPACE} stats)")
    return summary
