"""Live progress of runs for people: one line per candidate, verdict and decision, then a summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from .agent import Agent, Event, RunResult


def describe(event: Event) -> str | None:
    """One readable line for an event (None for events not worth a line)."""
    data = event.data
    if event.kind == "step":
        return f"step {data.get('index')}: {data.get('action')} -> {data.get('observation')}"
    if event.kind == "episode":
        why = ", ".join(data.get("failing_tests") or []) or data.get("reason") or ""
        return f"episode: {'[green]passed[/green]' if data.get('passed') else '[red]failed[/red]'} after " \
               f"{data.get('steps')} step(s)" + (f"; failing: {why}" if why else "")
    if event.kind == "memory":
        return f"memory: {len(data.get('ids', []))} item(s) retrieved"
    if event.kind == "candidate":
        candidate = data["candidate"]
        verdicts = data.get("verdicts") or []
        verdict = ""
        if verdicts:
            verdict = " [green]PASS[/green]" if verdicts[0]["passed"] else " [red]fail[/red]"
        return (f"candidate {candidate['id']}: answer {candidate['answer']!r} ({candidate['status']}, "
                f"{candidate.get('tokens', 0)} tokens){verdict}")
    if event.kind == "verdict":
        verdict = data["verdict"]
        return f"verdict {verdict['verifier']} on {verdict['candidate_id']}: " \
               f"{'accept' if verdict['passed'] else 'reject'} ({verdict['score']:.2f})"
    if event.kind == "decision":
        decision = data["decision"]
        return f"decision: {decision['action']} ({decision['reason']})"
    return None


def summary_table(results: Iterable[tuple[Any, RunResult]]) -> Table:
    table = Table(title="runs")
    for column in ("task", "answer", "verified", "reward", "candidates", "tokens", "USD", "seconds", "stop"):
        table.add_column(column, no_wrap=column != "stop")
    for label, result in results:
        reward = "-" if result.reward is None else f"{result.reward:.2f}"
        table.add_row(_clip(str(label), 40), _clip(str(result.answer), 30), "yes" if result.verified else "no", reward,
                      str(len(result.candidates)), str(result.spend.tokens), f"{result.spend.usd:.4f}",
                      f"{result.spend.seconds:.1f}", result.stop_reason)
    return table


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def run_with_progress(agent: Agent, task: Any, console: Console, *, quiet: bool = False, resume: str | None = None,
                      **kwargs: Any) -> RunResult:
    """Run one task (or resume the run ``resume``), printing events as they happen; returns the result."""
    result: RunResult | None = None
    events = agent.stream_resume(resume, **kwargs) if resume else agent.stream(task, **kwargs)
    for event in events:
        if event.kind == "result":
            result = event.data["result"]
        elif not quiet and (line := describe(event)) is not None:
            console.print(f"  [dim]{event.run_id[:8]}[/dim] {line}", highlight=False)
    assert result is not None
    return result
