"""The README's main job (``make demo`` / ``seasoned demo``).

A stream of multi-stage tasks (``sums``: several additions of different sizes) on the embedded model,
with experience memory on. For every task it shows the plan, the budget allocation per subtask (and
why), each subtask's samples, verification and spend, and what the curator stored; at the end a
summary (success, tokens per solved task early vs late in the stream, memory size), a plot file, and
the admin command to inspect what was learned.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from seasoned.models import seasoned_home

NAMESPACE = "demo"


def _plot(path: Path, passed: list[bool], tokens: list[int]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    window = max(2, len(passed) // 4)
    xs = list(range(1, len(passed) + 1))
    rate = [sum(passed[max(0, i - window + 1): i + 1]) / len(passed[max(0, i - window + 1): i + 1]) for i in range(len(passed))]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(xs, rate, marker="o")
    top.set_ylabel(f"success (rolling {window})")
    top.set_ylim(-0.05, 1.05)
    bottom.bar(xs, tokens, color=["tab:green" if p else "tab:gray" for p in passed])
    bottom.set_ylabel("tokens per task")
    bottom.set_xlabel("task in the stream (green: solved)")
    figure.suptitle("seasoned demo: a task stream with experience memory")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _describe(event, console: Console) -> None:
    data = event.data
    if event.kind == "memory":
        console.print(f"  memory: {len(data.get('ids', []))} item(s) retrieved")
    elif event.kind == "plan":
        plan = ", ".join(f"{s['id']} {s['kind']} (difficulty {s['difficulty']:.1f})" for s in data["subtasks"])
        console.print(f"  plan ({data['source']}): {plan}")
    elif event.kind == "allocation":
        decision = data["decision"]
        for sid, allocation in decision["allocations"].items():
            console.print(f"  allocate {sid}: {allocation['tokens']} tokens of {decision['budget_left']} left "
                          f"[dim]({allocation['reason']})[/dim]")
    elif event.kind == "subtask":
        result = data["result"]
        mark = "[green]verified[/green]" if result["verified"] else "[red]not verified[/red]"
        console.print(f"  {data['subtask']}: answer {result['answer']!r} {mark}, {result['tokens']} tokens")
    elif event.kind == "curation":
        report = data["report"]
        console.print(f"  curator: items {report.get('items')}, {report.get('allocation_records', 0)} allocation records")


def run(model: str | None = None, tasks: int = 8, stages: int = 2, budget: int = 800, seed: int = 0,
        keep_memory: bool = False, console: Console | None = None) -> dict:
    """Run the demo stream and return its summary."""
    from seasoned.envs import get_env
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.memory import MemoryBank

    console = console or Console()
    home = seasoned_home() / "demo"
    home.mkdir(parents=True, exist_ok=True)
    bank = MemoryBank.open(namespace=NAMESPACE)
    if not keep_memory:
        for item in bank.list(limit=100_000):
            bank.delete(item.id, hard=True)
    agent = Agent(model, memory=bank, namespace=NAMESPACE, allocation="learned",
                  strategy=parse_strategy("adaptive-8", max_tokens=48, seed=seed))
    env = get_env("sums")
    stream = env.tasks(n=tasks, seed=seed, difficulty=stages)
    console.print(f"[bold]seasoned demo[/bold]: {tasks} multi-stage tasks on {agent.gateway.model}, "
                  f"{budget} tokens each, memory namespace {NAMESPACE!r}, learned allocation")
    passed, spent, rows = [], [], []
    started = time.perf_counter()
    for index, task in enumerate(stream, 1):
        console.rule(f"task {index}/{tasks}: {task.id}")
        console.print(task.prompt, markup=False, highlight=False)
        result = None
        for event in agent.stream(task, env=env, budget={"max_tokens": budget}):
            if event.kind == "result":
                result = event.data["result"]
            else:
                _describe(event, console)
        ok = result.verified
        passed.append(ok)
        spent.append(result.spend.tokens)
        rows.append((task.id, ok, result.spend.tokens, result.spend.seconds, result.run_id))
        console.print(f"  => {'[green]solved[/green]' if ok else '[red]not solved[/red]'}, "
                      f"{result.spend.tokens} tokens, {result.spend.seconds:.1f}s (trace: seasoned runs show {result.run_id})")
    table = Table(title="the stream")
    for column in ("task", "solved", "tokens", "seconds"):
        table.add_column(column)
    for task_id, ok, tokens, seconds, _ in rows:
        table.add_row(task_id, "yes" if ok else "no", str(tokens), f"{seconds:.1f}")
    console.print(table)
    half = len(passed) // 2

    def per_solved(ps: list[bool], ts: list[int]) -> str:
        return f"{sum(ts) / sum(ps):.0f}" if sum(ps) else "n/a (none solved)"

    stats = bank.stats()
    plot = _plot(home / "stream.png", passed, spent)
    summary = {"tasks": tasks, "solved": sum(passed), "tokens": sum(spent),
               "tokens_per_solved_first_half": per_solved(passed[:half], spent[:half]),
               "tokens_per_solved_second_half": per_solved(passed[half:], spent[half:]),
               "memory_items": stats.get("active"), "memory_by_kind": stats.get("by_kind"),
               "seconds": round(time.perf_counter() - started, 1), "plot": str(plot) if plot else None}
    console.print(f"solved {summary['solved']}/{tasks}; tokens per solved task: first half "
                  f"{summary['tokens_per_solved_first_half']}, second half {summary['tokens_per_solved_second_half']}; "
                  f"memory now holds {summary['memory_items']} items {summary['memory_by_kind']}; "
                  f"{summary['seconds']}s")
    if plot:
        console.print(f"plot: {plot}")
    console.print(f"inspect the memory: seasoned-admin --namespace {NAMESPACE} list   "
                  f"(or: seasoned-admin --namespace {NAMESPACE} stats)")
    bank.close()
    return summary
