"""Live progress of runs for people: one line per candidate, verdict and decision, then a summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from seasoned.graphs import Agent, Event, RunResult


def describe(event: Event) -> str | None:
    """One readable line for an event (None for events not worth a line)."""
    data = event.data
    if event.kind == "turn":
        return escape(turn_line(data))
    if event.kind == "episode":
        why = ", ".join(data.get("failing_tests") or []) or data.get("reason") or ""
        return f"{_of(data)}episode: {'[green]passed[/green]' if data.get('passed') else '[red]failed[/red]'} " \
               f"after {data.get('steps')} step(s)" + escape(f"; failing: {why}" if why else "")
    if event.kind == "plan":
        return plan_line(data)
    if event.kind == "allocation":
        decision = data["decision"]
        shares = ", ".join(f"{sid} {a.get('tokens', 0)} tokens" for sid, a in decision.get("allocations", {}).items())
        return escape(f"allocation ({decision.get('policy')}): {shares}")
    if event.kind == "subtask":
        result = data.get("result") or {}
        return escape(f"subtask {data.get('subtask')}: answer {result.get('answer')!r} "
                      f"({'verified' if result.get('verified') else 'not verified'}, {result.get('tokens', 0)} tokens)")
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
        if verdict["passed"] is None:
            return f"verdict {verdict['verifier']} on {verdict['candidate_id']}: [yellow]{escape(verdict['details'])}[/yellow]"
        return f"verdict {verdict['verifier']} on {verdict['candidate_id']}: " \
               f"{'accept' if verdict['passed'] else 'reject'} ({verdict['score']:.2f})"
    if event.kind == "decision":
        decision = data["decision"]
        return f"decision: {decision['action']} ({decision['reason']})"
    return None


def plan_line(data: dict, width: int = 60) -> str:
    """The plan: its subtasks (with difficulty), or the fallback to one subtask and why."""
    subtasks = data.get("subtasks") or []
    if data.get("source") == "fallback":
        return f"[yellow]plan: one subtask (fallback): {escape(data.get('reason') or '')}[/yellow]"
    steps = "; ".join(f"{s['id']} {_clip(s['description'], width)} (difficulty {s['difficulty']:.2f})" for s in subtasks)
    return escape(f"plan ({data.get('source')}): {len(subtasks)} subtask(s): {steps}")


def _of(data: dict) -> str:
    return f"{data['candidate']} " if data.get("candidate") else ""


def turn_line(data: dict, width: int = 100) -> str:
    """One turn of an episode: its action and what came back, or why no action was read (and the reply)."""
    head = f"{_of(data)}turn {data.get('index')}: "
    if data.get("action"):
        return head + f"{data['action']} -> {_clip(data.get('observation') or '', width)}"
    why = _clip((data.get("error") or "no action").splitlines()[0], width // 2)
    return head + f"no action ({why}); reply: {_clip(data.get('reply') or '', width // 2)!r}"


def judge_line(results: Iterable[RunResult]) -> str | None:
    """What the LLM judge took and gave over these runs, for the closing line (None without a judge)."""
    judged = [r.judge for r in results if r.judge]
    if not judged:
        return None
    tokens = sum(j["tokens"] for j in judged)
    total = sum(r.spend.tokens for r in results) or 1
    verdicts, missing = sum(j["verdicts"] for j in judged), sum(j["no_verdict"] for j in judged)
    return (f"judge {tokens} tokens ({tokens / total:.0%}), {verdicts} verdict(s)"
            + (f", {missing} no verdict" if missing else ""))


def summary_table(results: Iterable[tuple[Any, RunResult]], width: int = 80) -> Table:
    """One row per run; fits ``width`` columns (the stop reason only when there is room)."""
    results = list(results)
    rewards = any(r.reward is not None for _, r in results)
    rows = []
    for label, result in results:
        row = {"task": " ".join(str(label).split()), "answer": " ".join(str(result.answer).split()),
               "ok": "yes" if result.verified else "no", "cands": str(len(result.candidates)),
               "tokens": str(result.spend.tokens), "USD": f"{result.spend.usd:.4f}", "s": f"{result.spend.seconds:.1f}"}
        if rewards:
            row["reward"] = "-" if result.reward is None else f"{result.reward:.2f}"
        row["stop"] = result.stop_reason
        rows.append(row)
    names = ["task", "answer", "ok", *(["reward"] if rewards else []), "cands", "tokens", "USD", "s", "stop"]
    sizes = {n: max([len(n), *(len(r[n]) for r in rows)]) for n in names}
    sizes["answer"] = min(sizes["answer"], 16)
    fixed = sum(sizes[n] + 2 for n in names if n not in ("task", "stop"))
    if width - fixed - sizes["stop"] - 2 < 24:  # no room for the stop reason
        names.remove("stop")
    else:
        sizes["stop"] = min(sizes["stop"], width - fixed - 26)
        fixed += sizes["stop"] + 2
    sizes["task"] = max(8, min(sizes["task"], width - fixed - 2))
    table = Table(title="runs", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in names:
        table.add_column(name, width=sizes[name], no_wrap=True, overflow="ellipsis",
                         justify="right" if name in ("reward", "cands", "tokens", "USD", "s") else "left")
    for row in rows:
        table.add_row(*[row[n] for n in names])
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
