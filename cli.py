"""The ``seasoned`` command. Thin: it parses arguments and calls the Python API, it holds no logic."""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version

import typer
from rich.console import Console
from seasoned.models.errors import SeasonedError

app = typer.Typer(help="seasoned: LLM agents that get better with experience.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)


def _version() -> str:
    try:
        return version("seasoned")
    except PackageNotFoundError:
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        console.print(f"seasoned {_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    version_flag: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                      help="Print the version and exit."),
) -> None:
    """seasoned: LLM agents that get better with experience and spend test-time compute where it pays."""


@app.command()
def chat(
    prompt: str = typer.Argument(..., help="What to ask."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model string (default: SEASONED_MODEL or local/smollm2-135m)."),
    system: str | None = typer.Option(None, "--system", help="A system message."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Most tokens to generate."),
    temperature: float | None = typer.Option(None, "--temperature", "-t"),
    seed: int | None = typer.Option(None, "--seed", help="Seed for reproducible sampling."),
    budget_tokens: int | None = typer.Option(None, "--budget-tokens", help="Hard cap on tokens (prompt + reply)."),
    as_json: bool = typer.Option(False, "--json", help="Print the reply and its spend as JSON."),
) -> None:
    """Send one prompt and print the reply and what it cost."""
    from seasoned.models import Budget, Gateway

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    budget = Budget(max_tokens=budget_tokens) if budget_tokens else None
    reply = Gateway(model).complete(messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                    budget=budget)
    spend = {"model": reply.model, "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
             "total_tokens": reply.total_tokens, "cost_usd": reply.cost_usd, "latency_s": round(reply.latency_s, 3)}
    if as_json:
        console.print_json(json.dumps({"reply": reply.text, **spend}))
        return
    console.print(reply.text, markup=False, highlight=False)
    console.print(f"[dim]{reply.model}: {reply.prompt_tokens} prompt + {reply.completion_tokens} completion = "
                  f"{reply.total_tokens} tokens, ${reply.cost_usd:.6f}, {reply.latency_s:.2f}s[/dim]")


@app.command()
def demo(
    model: str | None = typer.Option(None, "--model", "-m", help="Model string (default: the embedded model)."),
    tasks: int = typer.Option(8, "--tasks", "-n", help="How many tasks in the stream."),
    stages: int = typer.Option(2, "--stages", help="Stages per task (2..5)."),
    budget: int = typer.Option(800, "--budget", help="Tokens per task (hard cap)."),
    seed: int = typer.Option(0, "--seed"),
    keep_memory: bool = typer.Option(False, "--keep-memory", help="Start from what earlier demos learned."),
) -> None:
    """The main job: a stream of multi-stage tasks with experience memory, shown live."""
    from seasoned import demo as demo_job

    demo_job.run(model=model, tasks=tasks, stages=stages, budget=budget, seed=seed, keep_memory=keep_memory,
                 console=console)


@app.command()
def run(
    task: str | None = typer.Argument(None, help="The task, in words (or use --env)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model string (default: the embedded model)."),
    strategy: str = typer.Option("adaptive", "--strategy", "-s",
                                 help="single | best_of_n-N | self_consistency-N | revise-N | adaptive[-N]"),
    budget_tokens: int | None = typer.Option(None, "--budget-tokens", help="Hard cap on tokens per task."),
    budget_usd: float | None = typer.Option(None, "--budget-usd", help="Hard cap on USD per task."),
    namespace: str = typer.Option("default", "--namespace", help="Memory namespace."),
    memory: bool = typer.Option(False, "--memory/--no-memory", help="Retrieve from (and credit) the memory bank."),
    env: str | None = typer.Option(None, "--env", help="Run tasks of an environment (see `seasoned envs list`)."),
    task_id: str | None = typer.Option(None, "--task", help="With --env: one task by id."),
    n: int | None = typer.Option(None, "--n", help="With --env: how many tasks (default 3)."),
    seed: int = typer.Option(0, "--seed", help="With --env: which tasks; also seeds sampling."),
    difficulty: int | None = typer.Option(None, "--difficulty", help="With --env: task difficulty."),
    resume: str | None = typer.Option(None, "--resume", help="Continue a killed run by its id."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
) -> None:
    """Solve a task (or an environment's tasks) with test-time scaling, within a hard budget."""
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.graphs.progress import run_with_progress, summary_table

    if sum(x is not None for x in (task, env, resume)) != 1:
        raise typer.BadParameter("give exactly one of: a TASK, --env NAME, or --resume RUN_ID")
    budget = {k: v for k, v in (("max_tokens", budget_tokens), ("max_usd", budget_usd)) if v is not None}
    bank = None
    if memory:
        from seasoned.memory import MemoryBank

        bank = MemoryBank.open(namespace=namespace)
    agent = Agent(model, strategy=parse_strategy(strategy, seed=seed), budget=budget or None,
                  namespace=namespace, memory=bank)
    out = errors if as_json else console
    results = []
    if resume:
        environment = _env(env) if env else None
        results.append((resume, agent.resume(resume, env=environment)))
    elif env:
        from seasoned.envs import get_env

        environment = get_env(env)
        try:
            tasks = [environment.get_task(task_id)] if task_id else environment.tasks(
                n=3 if n is None else n, seed=seed, difficulty=difficulty)
            for item in tasks:
                out.print(f"[bold]{item.id}[/bold]")
                result = run_with_progress(agent, item, out, quiet=quiet, env=environment)
                results.append((item.id, result))
        finally:
            environment.close()
    else:
        results.append((task, run_with_progress(agent, task, out, quiet=quiet)))
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for _, r in results]))
        return
    console.print(summary_table(results))
    solved = sum(r.verified for _, r in results)
    console.print(f"{solved}/{len(results)} verified · {sum(r.spend.tokens for _, r in results)} tokens · "
                  f"${sum(r.spend.usd for _, r in results):.4f} · trace: seasoned runs show {results[-1][1].run_id}")


def _env(name: str):
    from seasoned.envs import get_env

    return get_env(name)


runs_app = typer.Typer(help="Recorded runs: list them, show one's trace.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    limit: int = typer.Option(20, "--limit", help="How many runs, newest first."),
    namespace: str | None = typer.Option(None, "--namespace"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The most recent runs."""
    from seasoned.graphs.runs_view import print_runs, runs_json
    from seasoned.graphs.runstore import RunStore

    runs = RunStore.open().list_runs(limit=limit, namespace=namespace)
    print(runs_json(runs)) if as_json else print_runs(runs, console)


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One run's trace: subtasks, candidates, verdicts, decisions, calls and spend per role."""
    from seasoned.graphs.runs_view import print_trace, trace_json
    from seasoned.graphs.runstore import RunStore

    trace = RunStore.open().get_run(run_id)
    print(trace_json(trace)) if as_json else print_trace(trace, console)


envs_app = typer.Typer(help="Task environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")


@envs_app.command("list")
def envs_list() -> None:
    """The environments `seasoned run --env NAME` accepts."""
    from seasoned.envs.cli import list_environments
    from seasoned.tools.sandbox import describe_isolation

    list_environments(out=lambda line: console.print(line, markup=False, highlight=False))
    console.print(describe_isolation(), markup=False, highlight=False)


@envs_app.command("check")
def envs_check(
    env: str = typer.Argument(..., help="The environment (only `swe` has a gold check)."),
    file: str = typer.Argument(..., help="A SWE-bench JSONL file."),
    instance: list[str] | None = typer.Option(None, "--instance", help="Check only this instance id (repeatable)."),  # noqa: B008
    repos: str | None = typer.Option(None, "--repos", help="Directory of owner__name.bundle / owner__name/ "
                                     "repositories (default: SEASONED_SWE_REPOS)."),
    install: str | None = typer.Option(None, "--install", help="Install command for instances without one."),
    test_cmd: str | None = typer.Option(None, "--test-cmd", help="Test command for instances without one."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document with every verdict."),
) -> None:
    """Gold check: each instance's reference patch must resolve it and an empty patch must not."""
    from seasoned.envs.base import EnvError

    if env != "swe":
        raise typer.BadParameter(f"only the swe environment has a gold check, not {env!r}", param_hint="ENV")
    from seasoned.envs.swe.check import check_file, describe

    show = None if as_json else (lambda row: console.print(describe(row), markup=False, highlight=False,
                                                           soft_wrap=True))
    try:
        rows = check_file(file, instance_ids=instance or None, repos=repos, install=install, test_cmd=test_cmd,
                          out=show)
    except EnvError as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    invalid = [r["instance_id"] for r in rows if not r["valid"]]
    if as_json:
        print(json.dumps({"valid": not invalid, "instances": rows}, indent=2))
    else:
        console.print(f"{len(rows) - len(invalid)}/{len(rows)} instances valid"
                      + (f"; invalid: {', '.join(invalid)}" if invalid else ""), markup=False, highlight=False,
                      soft_wrap=True)
    if invalid:
        raise typer.Exit(1)


@app.command()
def bench(
    out: str = typer.Option("bench-results", "--out", "-o", help="Output folder (rerun to resume)."),
    env: str | None = typer.Option(None, "--env", help="Environments, comma-separated (default addition)."),
    strategy: str | None = typer.Option(None, "--strategy", help="Strategies, e.g. single,best_of_n-8,adaptive-8."),
    budget: str | None = typer.Option(None, "--budget", help="Token caps per task, e.g. 400,800 (none: no cap)."),
    allocation: str | None = typer.Option(None, "--allocation", help="uniform,difficulty,learned (multi-stage envs)."),
    memory: str | None = typer.Option(None, "--memory", help="on,off"),
    model: str | None = typer.Option(None, "--model", "-m", help="Models, comma-separated."),
    n: int | None = typer.Option(None, "--n", help="Tasks per environment (default 20)."),
    seed: int | None = typer.Option(None, "--seed"),
    difficulty: int | None = typer.Option(None, "--difficulty"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens per sample (default 48)."),
    workers: int | None = typer.Option(None, "--workers", help="Tasks run concurrently."),
    ray: str | None = typer.Option(None, "--ray", help="Distribute over Ray: 'local' or a cluster address."),
    config: str | None = typer.Option(None, "--config", help="A YAML/JSON grid file (options above)."),
    window: int | None = typer.Option(None, "--window", help="Rolling window of the memory-stream plot."),
) -> None:
    """A grid of environment x strategy x allocation x budget x memory (x model): JSONL, summary, plots."""
    from seasoned.benchmarks.grid import run_bench

    run_bench(out, env=env, strategy=strategy, budget=budget, allocation=allocation, memory=memory,
              model=model, n=n, seed=seed, difficulty=difficulty, max_tokens=max_tokens, workers=workers,
              ray=ray, config=config, window=window, console=console)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Beyond loopback, API keys are required."),
    port: int = typer.Option(8000, "--port"),
    model: str | None = typer.Option(None, "--model", "-m", help="Default base model."),
    keys_file: str | None = typer.Option(None, "--keys-file", help="API keys -> namespaces (or SEASONED_API_KEYS)."),
    db_url: str | None = typer.Option(None, "--db", help="Database URL (default SEASONED_DB_URL / SQLite)."),
) -> None:
    """The OpenAI-compatible HTTP service (POST /v1/chat/completions) with experience memory."""
    from seasoned.server.runner import serve as run_server

    run_server(host, port, model=model, keys_file=keys_file, db_url=db_url)


def main() -> None:
    """Entry point: one clear error line (exit 2) instead of a traceback for a user's mistake."""
    try:
        app()
    except (SeasonedError, typer.BadParameter) as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
