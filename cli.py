"""The ``seasoned`` command. Thin: it parses arguments and calls the Python API, it holds no logic."""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Optional

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
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model string (default: SEASONED_MODEL or local/smollm2-135m)."),
    system: Optional[str] = typer.Option(None, "--system", help="A system message."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Most tokens to generate."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for reproducible sampling."),
    budget_tokens: Optional[int] = typer.Option(None, "--budget-tokens", help="Hard cap on tokens (prompt + reply)."),
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
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model string (default: the embedded model)."),
    samples: int = typer.Option(8, "--samples", "-n", help="Samples per question."),
    questions: int = typer.Option(5, "--questions", "-q", help="How many questions."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The main job: test-time scaling on the embedded model, with spend and verification per question."""
    from seasoned import demo as demo_job

    demo_job.run(model=model, samples=samples, questions=questions, seed=seed, console=console)


def main() -> None:
    """Entry point: one clear error line (exit 2) instead of a traceback for a user's mistake."""
    try:
        app()
    except SeasonedError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
