"""The ``seasoned`` command. Thin: it parses arguments and calls the Python API, it holds no logic."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import typer
from rich.console import Console
from rich.markup import escape
from seasoned.errors import CliUsageError, SeasonedError
from seasoned.settings import quiet_third_party

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
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show third-party progress bars and warnings (hidden by default)."),
) -> None:
    """seasoned: LLM agents that get better with experience and spend test-time compute where it pays."""
    quiet_third_party(verbose)


def env_options(pairs: list[str] | None, env_file: str | None) -> dict:
    """``--env-opt KEY=VALUE`` (repeatable; VALUE read as JSON when it parses, else as text) and
    ``--env-file PATH`` (the ``path`` option: one's own SWE-bench JSONL) as an environment's options."""
    options: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CliUsageError(f"--env-opt: expected KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    if env_file is not None:
        if not os.path.isfile(env_file):
            raise CliUsageError(f"--env-file: {env_file!r} is not a file")
        options["path"] = env_file
    return options


API_BASE = typer.Option(None, "--api-base", help="An OpenAI-compatible server for the model "
                        "(e.g. http://127.0.0.1:8080/v1 with -m openai/NAME).")
API_KEY = typer.Option(None, "--api-key", help="The key for --api-base (else the provider's usual variable, "
                       "e.g. OPENAI_API_KEY).")


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
    api_base: str | None = API_BASE,
    api_key: str | None = API_KEY,
) -> None:
    """Send one prompt and print the reply and what it cost."""
    from seasoned.models import Budget, Gateway, connection_params

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    budget = Budget(max_tokens=budget_tokens) if budget_tokens else None
    gateway = Gateway(model, **connection_params(api_base, api_key))
    reply = gateway.complete(messages, max_tokens=max_tokens, temperature=temperature, seed=seed, budget=budget)
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
    tasks: int | None = typer.Option(None, "--tasks", "-n", help="How many tasks in the stream (default 100)."),
    strategy: str | None = typer.Option(None, "--strategy", "-s",
                                        help="Test-time strategy for every task (default adaptive-4)."),
    budget: int | None = typer.Option(None, "--budget", help="Tokens per task (hard cap; default none)."),
    repeat: float = typer.Option(0.3, "--repeat", help="Share of the stream that repeats earlier questions."),
    seed: int = typer.Option(0, "--seed"),
    keep_memory: bool = typer.Option(False, "--keep-memory", help="Start from what earlier demos learned."),
) -> None:
    """The main job: the same task stream with memory off, a fixed 2-shot prompt, then memory on; shown live,
    summarised, plotted."""
    from seasoned import demo as demo_job

    demo_job.run(model=model, tasks=tasks or demo_job.TASKS, strategy=strategy or demo_job.STRATEGY, budget=budget,
                 repeat=repeat, seed=seed, keep_memory=keep_memory, console=console)


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
    env_opt: list[str] = typer.Option(None, "--env-opt", metavar="KEY=VALUE",  # noqa: B008
                                      help="An environment option, repeatable (e.g. repos=./repos, "
                                           "test_timeout=600); VALUE is read as JSON when it parses."),
    env_file: str | None = typer.Option(None, "--env-file", help="With --env swe: your own SWE-bench JSONL."),
    plan: bool = typer.Option(False, "--plan", help="Plan the task into subtasks and split the budget "
                                                    "across them (see --allocation)."),
    allocation: str = typer.Option("difficulty", "--allocation",
                                   help="How a multi-stage run's budget is split: uniform | difficulty | learned."),
    resume: str | None = typer.Option(None, "--resume", help="Continue a killed or interrupted run by its id "
                                                             "(any unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list with one result per task: run_id, "
                                 "task, answer, verified, confidence, stop_reason, candidates, verdicts, "
                                 "subtasks, spend {tokens, usd, calls, seconds, by_role}."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live progress."),
    api_base: str | None = API_BASE,
    api_key: str | None = API_KEY,
) -> None:
    """Solve a task (or an environment's tasks) with test-time scaling, within a hard budget.

    Ctrl-C stops the run at once and keeps its record (status interrupted, with its spend);
    `seasoned run --resume ID` continues it without redoing finished samples."""
    from seasoned.graphs import Agent, parse_strategy

    from .progress import judge_line, run_with_progress, summary_table

    if sum(x is not None for x in (task, env, resume)) != 1:
        raise CliUsageError("give exactly one of: a TASK, --env NAME, or --resume RUN_ID")
    if resume is not None and not resume.strip():
        raise CliUsageError("--resume: give a run id, or a unique prefix of one (see `seasoned runs list`)")
    if task is not None and not task.strip():
        raise CliUsageError("TASK is empty: say what to solve, e.g. seasoned run \"What is 2+3?\"")
    options = env_options(env_opt, env_file)
    if options and not (env or resume):
        raise CliUsageError("--env-opt and --env-file need --env NAME (or --resume)")
    budget = {k: v for k, v in (("max_tokens", budget_tokens), ("max_usd", budget_usd)) if v is not None}
    bank = None
    if memory:
        from seasoned.memory import MemoryBank

        bank = MemoryBank.open(namespace=namespace)
    agent = Agent(model, strategy=parse_strategy(strategy, seed=seed), budget=budget or None,
                  namespace=namespace, memory=bank, allocation=allocation, plan=True if plan else None,
                  api_base=api_base, api_key=api_key)
    out = errors if as_json else console
    results: list = []
    current = {"run_id": None}

    def one(label: str, item, environment=None, run_id: str | None = None):
        current["run_id"] = run_id or uuid.uuid4().hex[:16]
        if not quiet:
            out.print(f"[dim]run {current['run_id']}[/dim]", highlight=False)
        if run_id:  # a resume
            result = run_with_progress(agent, None, out, quiet=quiet, resume=run_id, env=environment)
        else:
            result = run_with_progress(agent, item, out, quiet=quiet, env=environment, run_id=current["run_id"])
        results.append((label, result))

    try:
        if resume:
            run_id = agent.store.resolve(resume)
            record = agent.store.get_run(run_id).run
            environment = _env(record.env, options) if record.env else None
            try:
                one(record.task_id or record.task, None, environment, run_id=run_id)
            finally:
                if environment is not None:
                    environment.close()
        elif env:
            environment = _env(env, options)
            try:
                tasks = [environment.get_task(task_id)] if task_id else environment.tasks(
                    n=3 if n is None else n, seed=seed, difficulty=difficulty)
                for item in tasks:
                    out.print(f"[bold]{item.id}[/bold]", highlight=False)
                    one(item.id, item, environment)
            finally:
                environment.close()
        else:
            one(task, task)
    except KeyboardInterrupt:
        _interrupted(agent, current["run_id"])
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for _, r in results]))
        return
    console.print(summary_table(results, width=console.width))
    solved = sum(r.verified for _, r in results)
    judge = judge_line([r for _, r in results])
    console.print(f"{solved}/{len(results)} verified · {sum(r.spend.tokens for _, r in results)} tokens · "
                  f"${sum(r.spend.usd for _, r in results):.4f}" + (f" · {judge}" if judge else "")
                  + f" · trace: seasoned runs show {results[-1][1].run_id}", highlight=False)


def _interrupted(agent, run_id: str | None) -> None:
    """Ctrl-C: the run is recorded as interrupted (with its spend), the way back is printed, and the
    process ends now: a model call still running in a worker thread would otherwise hold the exit."""
    if run_id is not None:
        agent.mark_interrupted(run_id)
        errors.print(f"interrupted: resume with seasoned run --resume {run_id}", markup=False, highlight=False)
    else:
        errors.print("interrupted", markup=False, highlight=False)
    if agent.store is not None:
        agent.store.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _env(name: str, options: dict | None = None):
    from seasoned.envs import get_env

    return get_env(name, **(options or {}))


runs_app = typer.Typer(help="Recorded runs: list them, show one's trace.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def runs_list(
    limit: int = typer.Option(20, "--limit", help="How many runs, newest first."),
    namespace: str | None = typer.Option(None, "--namespace"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The most recent runs."""
    from seasoned.runs import RunStore

    from .views import print_runs, runs_json

    runs = RunStore.open().list_runs(limit=limit, namespace=namespace)
    print(runs_json(runs)) if as_json else print_runs(runs, console)


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One run's trace: subtasks, candidates, verdicts, decisions, calls and spend per role."""
    from seasoned.runs import RunStore

    from .views import print_trace, trace_json

    trace = RunStore.open().get_run(run_id)
    print(trace_json(trace)) if as_json else print_trace(trace, console)


envs_app = typer.Typer(help="Task environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")


@envs_app.command("list")
def envs_list() -> None:
    """The environments `seasoned run --env NAME` accepts."""
    from seasoned.envs.registry import list_environments
    from seasoned.tools.isolation import describe_isolation

    list_environments(out=lambda line: console.print(line, markup=False, highlight=False))
    console.print(describe_isolation(), markup=False, highlight=False)


@envs_app.command("check")
def envs_check(
    env: str = typer.Argument(..., help="The environment (only `swe` has a gold check)."),
    file: str = typer.Argument(..., help="A SWE-bench JSONL file."),
    instance: list[str] | None = typer.Option(  # noqa: B008 (typer's way of declaring options)
        None, "--instance", help="Check only this instance id (repeatable)."),
    repos: str | None = typer.Option(None, "--repos", help="Directory of owner__name.bundle / owner__name/ "
                                     "repositories (default: SEASONED_SWE_REPOS)."),
    install: str | None = typer.Option(None, "--install", help="Install command for instances without one."),
    test_cmd: str | None = typer.Option(None, "--test-cmd", help="Test command for instances without one."),
    env_opt: list[str] = typer.Option(None, "--env-opt", metavar="KEY=VALUE",  # noqa: B008
                                      help="An option of the swe environment, repeatable (e.g. test_timeout=600, "
                                           "memory_mb=8192), as on `seasoned run`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document with every verdict."),
) -> None:
    """Gold check: each instance's reference patch must resolve it and an empty patch must not."""
    import inspect

    from seasoned.envs.base import EnvError

    if env != "swe":
        raise typer.BadParameter(f"only the swe environment has a gold check, not {env!r}", param_hint="ENV")
    from seasoned.envs.swe.check import check_file, describe
    from seasoned.envs.swe.env import SWEEnv

    options = env_options(env_opt, None)
    options.update({k: v for k, v in (("install", install), ("test_cmd", test_cmd)) if v is not None})
    try:
        inspect.signature(SWEEnv).bind(file, repos=repos, **options)
    except TypeError as exc:
        raise CliUsageError(f"--env-opt: {exc} (swe options: {', '.join(_swe_options(SWEEnv))})") from None
    show = None if as_json else (lambda row: console.print(describe(row), markup=False, highlight=False,
                                                           soft_wrap=True))
    try:
        rows = check_file(file, instance_ids=instance or None, repos=repos, out=show, **options)
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


def _swe_options(env_class) -> list[str]:
    import inspect

    return [name for name in inspect.signature(env_class).parameters if name not in ("path", "repos")]


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
    env_opt: list[str] = typer.Option(None, "--env-opt", metavar="KEY=VALUE",  # noqa: B008
                                      help="An option for the grid's environments, repeatable (in-process "
                                           "workers; not sent to Ray workers)."),
    env_file: str | None = typer.Option(None, "--env-file", help="Your own SWE-bench JSONL (--env swe)."),
    api_base: str | None = API_BASE,
    api_key: str | None = API_KEY,
) -> None:
    """A grid of environment x strategy x allocation x budget x memory (x model): JSONL, summary, plots."""
    from seasoned.benchmarks.grid import run_bench

    options = env_options(env_opt, env_file)
    if options and ray:
        raise CliUsageError("--env-opt/--env-file apply to in-process workers, not with --ray")
    with _env_options_for((env or "addition").split(","), options):
        run_bench(out, env=env, strategy=strategy, budget=budget, allocation=allocation, memory=memory,
                  model=model, n=n, seed=seed, difficulty=difficulty, max_tokens=max_tokens, workers=workers,
                  ray=ray, config=config, window=window, console=console, api_base=api_base, api_key=api_key)


@contextmanager
def _env_options_for(names: list[str], options: dict) -> Iterator[None]:
    """While the block runs, every ``get_env(name)`` builds ``name`` with ``options`` (bench reads its
    environments by name); the registry is as it was afterwards."""
    from functools import partial

    from seasoned.envs import registry

    saved = dict(registry._CUSTOM)
    try:
        for name in (n.strip() for n in names if n.strip() and options):
            registry.get_env(name, **options).close()  # a bad option fails here, named, before the grid starts
            registry.register_env(name, partial(registry._factory(name), **options))
        yield
    finally:
        registry._CUSTOM.clear()
        registry._CUSTOM.update(saved)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Beyond loopback, API keys are required."),
    port: int = typer.Option(8000, "--port"),
    model: str | None = typer.Option(None, "--model", "-m", help="Default base model."),
    keys_file: str | None = typer.Option(None, "--keys-file", help="API keys -> namespaces (or SEASONED_API_KEYS)."),
    db_url: str | None = typer.Option(None, "--db", help="Database URL (default SEASONED_DB_URL / SQLite)."),
    strategy: str = typer.Option("single", "--strategy", help="Strategy of a bare model name (single, the "
                                 "default: one call per request; adaptive: several samples and a judge). "
                                 "STRATEGY:MODEL picks one per request."),
) -> None:
    """The OpenAI-compatible HTTP service (POST /v1/chat/completions) with experience memory."""
    from seasoned.server.runner import serve as run_server

    run_server(host, port, model=model, keys_file=keys_file, db_url=db_url, strategy=strategy)


def main() -> None:
    """Entry point: one clear error line (exit 2) instead of a traceback for a user's mistake."""
    try:
        app()
    except (SeasonedError, typer.BadParameter) as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
