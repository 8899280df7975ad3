"""``seasoned bench``: accuracy-versus-compute grids, resumable, with plots.

    seasoned bench --env addition --strategy single,best_of_n-8,adaptive-8 --budget 400,800 --n 20 --out DIR
    python -m seasoned.benchmarks.grid --env sums --allocation uniform,difficulty --memory on,off --out DIR

A grid is environment x model x strategy x allocation policy x token budget per task x memory on/off.
Every arm of an environment runs the same tasks (``env.tasks(n, seed, difficulty)``) with the same
strategy seed, and every answer is judged after the run by the environment's own check. Allocation
policies apply to multi-stage environments only (``sums``, ``wordproblems``); for single-stage ones the
arms have no allocation field. Budgets are token caps per task (``none``: no cap); ``--max-tokens`` caps
each sample. Each memory-on arm gets its own fresh memory bank, and runs its tasks as an ordered stream.

The output folder holds ``grid.json`` (the options), ``per-task.jsonl`` (one row per arm and task),
``summary.json`` (per arm: n, correct, accuracy with its Wilson 95% interval, mean tokens, tokens per
solved task; per-subtask-kind spend for multi-stage arms; per-window success and tokens per solved task
when the grid has memory arms) and the PNG plots (see ``grid_plots``). Rerunning with the same folder
skips the (arm, task) rows already written, so an interrupted grid resumes, and a grid can be extended
with more strategies or budgets.

``--workers N`` runs N tasks at once in this process. ``--ray [ADDRESS]`` runs every task as a Ray task
(``pip install 'seasoned[ray]'``; no address: a local Ray). With Ray, memory-on arms need a memory
database every worker reaches: ``SEASONED_DB_URL`` (or ``--memory-url``) set to PostgreSQL, and
``SEASONED_CHROMA_URL`` to a Chroma server; each arm then uses its own namespace there. Rows and
summaries have the same format whichever way the tasks ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from seasoned.models import connection_params

from . import grid_plots
from .grid_config import Arm, GridConfig, GridError, build_config
from .grid_exec import Job, run_local, run_ray
from .stats import tokens_per_solved, wilson, windows

ROWS = "per-task.jsonl"
SUMMARY = "summary.json"
GRID = "grid.json"
PLOTS = {"accuracy": "accuracy_vs_tokens.png", "subtasks": "subtask_spend.png", "memory": "memory_stream.png"}

__all__ = ["Arm", "GridConfig", "GridError", "build_config", "main", "run_bench", "summarize"]


def run_bench(
    out: str | Path,
    *,
    env: str | Sequence[str] | None = None,
    strategy: str | Sequence[str] | None = None,
    budget: str | int | Sequence[int | str | None] | None = None,
    allocation: str | Sequence[str] | None = None,
    memory: str | bool | Sequence[str | bool] | None = None,
    model: str | Sequence[str] | None = None,
    n: int | None = None,
    seed: int | None = None,
    difficulty: int | None = None,
    max_tokens: int | None = None,
    workers: int | None = None,
    ray: str | bool | None = None,
    window: int | None = None,
    memory_url: str | None = None,
    record: bool | None = None,
    config: str | Path | None = None,
    setup: Callable[[], None] | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> dict:
    """Run (or resume) a grid into ``out`` and return the summary (also written to ``summary.json``).

    List options take a list or a comma-separated string (``strategy="single,adaptive-8"``,
    ``budget="400,800,none"``, ``memory="on,off"``). Options left None come from the ``config`` grid file
    (YAML or JSON, same names), else the defaults. ``ray``: None (no Ray), ``"local"``/True, or an
    address. ``setup`` runs once before any task in every process that runs tasks (e.g. to register
    scripted models or custom environments on Ray workers). Raises ``GridError`` with a message naming
    the option at fault, or naming the failed task (finished rows are kept). ``api_base``/``api_key``
    reach the models of every arm (an OpenAI-compatible server); they are not written to the output folder.
    """
    console = console or Console()
    options = {"env": env, "strategy": strategy, "budget": budget, "allocation": allocation, "memory": memory,
               "model": model, "n": n, "seed": seed, "difficulty": difficulty, "max_tokens": max_tokens,
               "workers": workers, "ray": ray, "window": window, "memory_url": memory_url, "record": record}
    grid = build_config(options, config)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    grid_id = _grid_id(folder, grid)
    tasks = _tasks(grid)
    arms = grid.arms()
    done = {(row["arm"], row["task_id"]) for row in read_rows(folder)}
    jobs: list[Job] = [(arm, index, task) for arm in arms for index, task in enumerate(tasks[arm.env])
                       if (arm.key, task.id) not in done]
    skipped = sum(len(tasks[arm.env]) for arm in arms) - len(jobs)
    if skipped:
        console.print(f"resuming: {skipped} finished (arm, task) row(s) in {folder / ROWS} are kept")
    if setup is not None:
        setup()
    _execute(jobs, grid, folder, grid_id, setup, progress, console, connection_params(api_base, api_key))
    summary = summarize(grid, folder, tasks)
    console.print(summary_table(summary, grid))
    for env_name, named in summary["curves"].items():
        for curve, figures in named.items():
            auc = figures["auc_vs_oracle"]
            reach = ", ".join(f"{k}: {'-' if v is None else f'{v:.0f}'}" for k, v in figures["tokens_to_reach"].items())
            console.print(f"{env_name} / {curve}: " + (f"AUC vs oracle {auc:.3f}; " if auc is not None else "")
                          + f"tokens per task to reach accuracy {reach}", highlight=False)
    for name in summary["plots"]:
        console.print(f"plot: {folder / name}")
    return summary


def _tasks(grid: GridConfig) -> dict[str, list]:
    from seasoned.envs import get_env

    return {name: get_env(name).tasks(n=grid.n, seed=grid.seed, difficulty=grid.difficulty) for name in grid.envs}


def _grid_id(folder: Path, grid: GridConfig) -> str:
    """The folder's grid id (memory namespaces under Ray hang on it), kept across resumes."""
    path = folder / GRID
    previous = json.loads(path.read_text()) if path.exists() else {}
    grid_id = previous.get("grid_id") or uuid.uuid4().hex[:8]
    path.write_text(json.dumps({"grid_id": grid_id, "options": grid.to_json()}, indent=2) + "\n")
    return grid_id


def read_rows(folder: Path) -> list[dict]:
    """The rows of ``per-task.jsonl`` (a torn last line, from a killed run, is ignored)."""
    path = Path(folder) / ROWS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _execute(jobs: list[Job], grid: GridConfig, folder: Path, grid_id: str, setup: Callable | None,
             show: bool, console: Console, connection: dict) -> None:
    lock = threading.Lock()
    columns = [TextColumn("[bold]bench[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("solved {task.fields[solved]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not show) as bar, open(folder / ROWS, "a") as handle:
        if handle.tell() and not (folder / ROWS).read_bytes().endswith(b"\n"):
            handle.write("\n")  # a torn line from a killed run stays on its own line
        total = bar.add_task(f"{len(grid.arms())} arm(s)", total=len(jobs), solved=0)
        solved = 0

        def on_row(row: dict) -> None:
            nonlocal solved
            with lock:
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                solved += row["passed"]
                bar.update(total, advance=1, solved=solved)

        if not jobs:
            return
        if grid.ray is not None:
            run_ray(jobs, grid, grid_id, on_row, setup=setup, connection=connection)
        else:
            asyncio.run(run_local(jobs, grid, folder, grid_id, on_row, connection))


# --- summary -----------------------------------------------------------------------------------------
def summarize(grid: GridConfig, folder: Path, tasks: dict[str, list]) -> dict:
    """Per-arm figures from the rows of this grid's arms and tasks; writes summary.json and the plots."""
    arms = {arm.key: arm for arm in grid.arms()}
    wanted = {env: {t.id for t in env_tasks} for env, env_tasks in tasks.items()}
    rows_by_arm: dict[str, list[dict]] = {key: [] for key in arms}
    for row in read_rows(folder):
        if row.get("arm") in arms and row["task_id"] in wanted[arms[row["arm"]].env]:
            rows_by_arm[row["arm"]].append(row)
    with_windows = True in grid.memory
    summaries = [arm_summary(arms[key], sorted(rows, key=lambda r: r["index"]), grid.window, with_windows)
                 for key, rows in rows_by_arm.items()]
    varying = grid.varying()
    oracles = oracle_curves(grid, tasks)
    plots = [grid_plots.accuracy_vs_tokens(summaries, arms, varying, folder / PLOTS["accuracy"], oracles),
             grid_plots.subtask_spend(summaries, arms, varying, folder / PLOTS["subtasks"]),
             grid_plots.memory_stream(rows_by_arm, arms, varying, grid.window, folder / PLOTS["memory"])]
    summary = {"options": grid.to_json(), "tasks": {env: [t.id for t in ts] for env, ts in tasks.items()},
               "arms": summaries, "plots": [p.name for p in plots if p is not None],
               "curves": curve_summaries(summaries, arms, varying, oracles)}
    (folder / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def oracle_curves(grid: GridConfig, tasks: dict[str, list]) -> dict[str, list[dict]]:
    """For simulated environments (their tasks' success probabilities are known): the oracle's accuracy
    against tokens per task, with at most the grid's largest ``n`` samples per stage."""
    from seasoned.envs import get_env
    from seasoned.graphs.stopping import KnownStage, oracle
    from seasoned.models.tokens import count_text_tokens

    most = max((int(s.split("-")[1]) for s in grid.strategies if "-" in s and s.split("-")[1].isdigit()), default=8)
    out = {}
    for name, env_tasks in tasks.items():
        env = get_env(name)
        if not hasattr(env, "latent") or not env_tasks:
            continue
        stages = [[KnownStage(p, tokens + count_text_tokens(t.prompt) + 16) for p, tokens in env.latent(t)]
                  for t in env_tasks]
        top = max(sum(s.tokens for s in task) for task in stages) * most
        out[name] = []
        for i in range(41):
            success, spent = oracle(stages, 10 * (top / 10) ** (i / 40), max_samples=most)
            out[name].append({"tokens_per_task": spent, "accuracy": success, "low": success, "high": success})
    return out


def curve_summaries(summaries: list[dict], arms: dict[str, Arm], varying: list[str],
                    oracles: dict[str, list[dict]]) -> dict[str, dict]:
    """Per environment and curve (the arms that differ only in budget): area under the accuracy-vs-tokens
    curve relative to the oracle's (simulated environments) and the tokens per task to reach accuracies."""
    from . import curves

    grouped: dict[str, dict[str, list[dict]]] = {}
    for s in summaries:
        if s["n"]:
            arm = arms[s["arm"]]
            point = {"tokens_per_task": s["mean_tokens"], "accuracy": s["accuracy"]}
            grouped.setdefault(arm.env, {}).setdefault(grid_plots._curve_name(arm, varying), []).append(point)
    return {env: curves.summarize(named, oracles.get(env), reach=(0.25, 0.5, 0.75))
            for env, named in grouped.items()}


def arm_summary(arm: Arm, rows: list[dict], window: int, with_windows: bool) -> dict:
    n = len(rows)
    correct = sum(bool(r["passed"]) for r in rows)
    tokens = [r["tokens"] for r in rows]
    low, high = wilson(correct, n)
    summary = {"arm": arm.key, **arm.fields(), "label": arm.label(), "n": n, "correct": correct,
               "accuracy": correct / n if n else 0.0, "ci95": [round(low, 4), round(high, 4)],
               "mean_tokens": sum(tokens) / n if n else 0.0, "tokens_per_solved": tokens_per_solved(tokens,
               [r["passed"] for r in rows]), "mean_usd": sum(r["usd"] for r in rows) / n if n else 0.0,
               "mean_calls": sum(r["calls"] for r in rows) / n if n else 0.0,
               "mean_candidates": sum(r["candidates"] for r in rows) / n if n else 0.0,
               "mean_seconds": sum(r["seconds"] for r in rows) / n if n else 0.0}
    kinds: dict[str, float] = {}
    for row in rows:
        for sub in row.get("subtasks") or []:
            kinds[sub["kind"] or "?"] = kinds.get(sub["kind"] or "?", 0.0) + sub["tokens"]
    if kinds:
        summary["subtask_tokens"] = {kind: total / n for kind, total in sorted(kinds.items())}
    if with_windows:
        summary["windows"] = windows([r["passed"] for r in rows], tokens, window)
    return summary


def summary_table(summary: dict, grid: GridConfig) -> Table:
    varying = grid.varying()
    table = Table(title=f"seasoned bench: {', '.join(grid.envs)}, {grid.n} task(s) per arm, seed {grid.seed}",
                  box=box.SIMPLE_HEAD)
    for name in varying:
        longest = max((len(_cell(a, name)) for a in summary["arms"]), default=0)
        table.add_column(name, min_width=min(max(longest, len(name)), 40), overflow="fold")
    for name, width in (("solved", 6), ("accuracy", 5), ("95% CI", 11), ("tok/task", 5), ("tok/solved", 5)):
        table.add_column(name, justify="right", min_width=width)
    for s in summary["arms"]:
        cells = [_cell(s, name) for name in varying]
        per_solved = f"{s['tokens_per_solved']:.0f}" if s["tokens_per_solved"] is not None else "-"
        table.add_row(*cells, f"{s['correct']}/{s['n']}", f"{s['accuracy']:.3f}",
                      f"{s['ci95'][0]:.3f}-{s['ci95'][1]:.3f}", f"{s['mean_tokens']:.0f}", per_solved)
    return table


def _cell(arm: dict, name: str) -> str:
    value = arm[name]
    if name == "memory":
        return "on" if value else "off"
    return "none" if value is None else str(value)


# --- command line ------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seasoned bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to resume)")
    p.add_argument("--config", help="grid file (YAML or JSON) with the options below as keys")
    p.add_argument("--env", help="environment(s), comma-separated (default addition)")
    p.add_argument("--strategy", help="strategies, e.g. single,best_of_n-8,adaptive-8")
    p.add_argument("--budget", help="token budgets per task, e.g. 400,800 ('none': no cap)")
    p.add_argument("--allocation", help="allocation policies for multi-stage envs: uniform,difficulty,learned")
    p.add_argument("--memory", help="on, off or on,off")
    p.add_argument("--model", help="model(s), comma-separated (default SEASONED_MODEL or local/smollm2-135m)")
    p.add_argument("--n", type=int, help="tasks per arm (default 20)")
    p.add_argument("--seed", type=int, help="task and sampling seed (default 0)")
    p.add_argument("--difficulty", type=int, help="task difficulty level (default: cycle through levels)")
    p.add_argument("--max-tokens", type=int, help="token cap per sample (default 48)")
    p.add_argument("--workers", type=int, help="tasks at once in this process (default 1)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run tasks on Ray (no ADDRESS: a local Ray)")
    p.add_argument("--window", type=int, help="window of the memory-stream figures (default 10)")
    p.add_argument("--memory-url", help="memory database for --ray (default SEASONED_DB_URL)")
    p.add_argument("--no-record", action="store_true", help="do not record runs in the run store")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console()
    try:
        run_bench(args.out, config=args.config, env=args.env, strategy=args.strategy, budget=args.budget,
                  allocation=args.allocation, memory=args.memory, model=args.model, n=args.n, seed=args.seed,
                  difficulty=args.difficulty, max_tokens=args.max_tokens, workers=args.workers, ray=args.ray,
                  window=args.window, memory_url=args.memory_url, record=False if args.no_record else None,
                  progress=not args.no_progress, console=console)
    except GridError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
