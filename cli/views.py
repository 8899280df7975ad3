"""How ``seasoned runs list`` and ``seasoned runs show ID`` print runs (rich tables, or JSON).

    store = RunStore.open()
    print_runs(store.list_runs(limit=20), console)          # or print(runs_json(...)) for --json
    print_trace(store.get_run(run_id), console)             # or print(trace_json(...)) for --json
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from seasoned.models.spend import Spend
from seasoned.runs import RunSummary, RunTrace

STATUS_STYLE = {"running": "yellow", "succeeded": "green", "success": "green", "done": "green",
                "completed": "green", "failed": "red", "error": "red", "cancelled": "magenta",
                "interrupted": "magenta", "budget_exhausted": "magenta"}
EPISODE_EVENTS = ("turn", "step", "episode")  # an episode's turns and verdicts: their own section ("step": older runs)


# --- formatting helpers ----------------------------------------------------------------------------
def shorten(text: str | None, width: int) -> str:
    """One line of at most ``width`` characters (whitespace collapsed, an ellipsis when cut)."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def when(moment: datetime | None) -> str:
    """Local time, without the date for today's runs."""
    if moment is None:
        return "-"
    local = moment.astimezone()
    today = datetime.now(UTC).astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")


def usd(value: float, known: bool = True) -> str:
    text = f"${value:.4f}" if value < 1 else f"${value:.2f}"
    return text if known else text + "?"


def seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}m"


def _yes_no(value: bool | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text("yes", style="green") if value else Text("no", style="red")


def _status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _compact(data: Any, width: int = 80) -> str:
    """A dict (allocation, spend, event data) on one line."""
    if not data:
        return "-"
    if isinstance(data, dict):
        text = ", ".join(f"{k}={_number(v)}" for k, v in data.items())
    else:
        text = json.dumps(data, default=str)
    return shorten(text, width)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


# --- runs list -------------------------------------------------------------------------------------
def print_runs(runs: Sequence[RunSummary], console: Console | None = None, *, task_width: int = 40) -> None:
    """The ``runs list`` table: id, when, status, verified, task (shortened), model and strategy (when the
    console is wide enough), tokens, USD, time. Narrow consoles show 8-character ids (any unique prefix
    names a run)."""
    console = console or Console()
    if not runs:
        console.print("No runs recorded yet (`seasoned run \"TASK\"` records one).")
        return
    wide = console.width >= 120  # model and strategy only when they fit; ids shortened when narrow
    rows = []
    for run in runs:
        row = {"id": run.id if wide else run.id[:8], "when": when(run.created_at), "status": run.status,
               "ok": "-" if run.verified is None else ("yes" if run.verified else "no"),
               "task": shorten(run.task, task_width)}
        if wide:
            row.update(model=run.model, strategy=run.strategy)
        row.update(tokens=f"{run.tokens:,}", USD=usd(run.cost_usd), time=seconds(run.seconds))
        rows.append(row)
    names = list(rows[0])
    sizes = {n: max([len(n), *(len(r[n]) for r in rows)]) for n in names}
    fixed = sum(sizes[n] + 2 for n in names if n != "task")
    sizes["task"] = max(8, min(sizes["task"], console.width - fixed - 1))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in names:
        table.add_column(name, width=sizes[name], no_wrap=True, overflow="ellipsis",
                         justify="right" if name in ("tokens", "USD", "time") else "left")
    for row in rows:
        cells = [escape(row[n]) for n in names]
        cells[names.index("status")] = _status(row["status"])
        cells[names.index("ok")] = _yes_no(None if row["ok"] == "-" else row["ok"] == "yes")
        table.add_row(*cells)
    console.print(table)


# --- runs show -------------------------------------------------------------------------------------
def print_trace(trace: RunTrace, console: Console | None = None, *, text_width: int = 100,
                max_calls: int = 200) -> None:
    """The ``runs show`` view: header, subtasks (allocation, spend), candidates (answer, verdicts, status,
    tokens), spend per role and per subtask, events, then the calls table (the first ``max_calls``)."""
    console = console or Console()
    console.print(_header(trace, text_width))
    if trace.subtasks:
        console.print(_subtasks(trace, text_width))
    if trace.candidates:
        console.print(_candidates(trace, text_width))
    if trace.calls:
        console.print(_spend_table("Spend per role", "role", trace.by_role, trace.totals))
        if len(trace.by_subtask) > 1:
            console.print(_spend_table("Spend per subtask", "subtask", trace.by_subtask, trace.totals))
    if any(e.kind in EPISODE_EVENTS for e in trace.events):
        console.print(_episodes(trace, text_width))
    if any(e.kind not in EPISODE_EVENTS for e in trace.events):
        console.print(_events(trace, text_width))
    if trace.calls:
        console.print(_calls(trace, max_calls))
    else:
        console.print(Text("No model calls recorded for this run.", style="dim"))


def _header(trace: RunTrace, width: int) -> Panel:
    run = trace.run
    lines = Table.grid(padding=(0, 2))
    lines.add_column(style="bold")
    lines.add_column()
    lines.add_row("task", escape(shorten(run.task, width * 3)))
    lines.add_row("status", Text.assemble(_status(run.status), "  verified: ", _yes_no(run.verified),
                                          f"  confidence: {run.confidence:.2f}" if run.confidence is not None else ""))
    if run.answer is not None:
        lines.add_row("answer", escape(shorten(run.answer, width * 2)))
    if run.error:
        lines.add_row("error", Text(run.error, style="red"))
    lines.add_row("model", f"{escape(run.model)}   strategy: {run.strategy}   namespace: {escape(run.namespace)}")
    extra = [f"env: {run.env}" if run.env else "", f"task id: {run.task_id}" if run.task_id else "",
             f"parent: {run.parent_id}" if run.parent_id else "", f"resumed {run.resumes}x" if run.resumes else ""]
    if any(extra):
        lines.add_row("", escape("   ".join(e for e in extra if e)))
    started = run.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    lines.add_row("time", f"started {started}, {seconds(run.seconds)}" + ("" if run.finished_at else " so far"))
    lines.add_row("spend", f"{run.tokens:,} tokens, {usd(run.cost_usd, trace.totals.cost_known)}, {run.calls} calls")
    judge = _judge_summary(trace)
    if judge:
        lines.add_row("judge", escape(judge))
    plan = next((e.data for e in reversed(trace.events) if e.kind == "plan"), None)
    if plan:
        text = f"{plan.get('source')}: {len(plan.get('subtasks') or [])} subtask(s); {plan.get('reason') or ''}"
        lines.add_row("plan", Text(text, style="yellow" if plan.get("source") == "fallback" else ""))
    if run.budget:
        lines.add_row("budget", escape(_compact(run.budget, width)))
    for item in trace.feedback:
        lines.add_row("feedback", Text.assemble(_yes_no(item.success), f"  {escape(item.comment or '')}"))
    return Panel(lines, title=f"run {escape(run.id)}", title_align="left")


def _judge_summary(trace: RunTrace) -> str | None:
    """The LLM judge's tokens and share of the run's, its verdicts and its "no verdict" judgements."""
    spent = trace.by_role.get("verifier")
    judged = [v for c in trace.candidates for v in c.verdicts if v.verifier.startswith("judge")]
    if spent is None and not judged:
        return None
    tokens = spent.total_tokens if spent else 0
    share = tokens / trace.totals.total_tokens if trace.totals.total_tokens else 0.0
    missing = sum(v.passed is None for v in judged)
    return (f"{tokens:,} tokens ({share:.0%} of the run) in {spent.calls if spent else 0} calls, "
            f"{len(judged) - missing} verdict(s)" + (f", {missing} no verdict" if missing else ""))


def _subtasks(trace: RunTrace, width: int) -> Table:
    table = Table(title="Subtasks", title_justify="left", header_style="bold", show_lines=False)
    for name in ("id", "kind", "difficulty", "description", "allocation", "status", "verified", "spend"):
        table.add_column(name, no_wrap=name in ("id", "kind", "status"))
    for sub in trace.subtasks:
        spent = trace.by_subtask.get(sub.id)
        parts = [f"{spent.total_tokens:,} tok, {usd(spent.cost_usd, spent.cost_known)}"] if spent else []
        if sub.spend:  # what the graph reported (seconds, samples...) next to what the calls add up to
            parts.append(_compact(sub.spend, 40))
        spend = "; ".join(parts) or "-"
        depends = f" (after {', '.join(sub.depends_on)})" if sub.depends_on else ""
        table.add_row(
            escape(sub.id), escape(sub.kind), "-" if sub.difficulty is None else f"{sub.difficulty:.2f}",
            escape(shorten(sub.description, width // 2) + depends), escape(_compact(sub.allocation, 40)),
            _status(sub.status), _yes_no(sub.verified), escape(spend),
        )
    return table


def _verdicts(candidate) -> Text:
    if not candidate.verdicts:
        return Text("-", style="dim")
    parts = []
    for verdict in candidate.verdicts:
        mark = {True: ("pass", "green"), False: ("fail", "red"), None: ("?", "yellow")}[verdict.passed]
        score = f" {verdict.score:.2f}" if verdict.score is not None else ""
        parts.append(Text.assemble(f"{verdict.verifier}: ", (mark[0], mark[1]), score))
    return Text("\n").join(parts)


def _candidates(trace: RunTrace, width: int) -> Table:
    table = Table(title="Candidates", title_justify="left", header_style="bold")
    multi = len({c.subtask for c in trace.candidates}) > 1 or bool(trace.subtasks)
    columns = (["subtask"] if multi else []) + ["#", "answer", "verdicts", "score", "status", "tokens"]
    for name in columns:
        table.add_column(name, justify="right" if name in ("#", "score", "tokens") else "left")
    for cand in trace.candidates:
        answer = cand.answer if cand.answer is not None else cand.text
        row = [escape(cand.subtask)] if multi else []
        row += [str(cand.index), escape(shorten(answer, width // 2)), _verdicts(cand),
                "-" if cand.score is None else f"{cand.score:.2f}", _status(cand.status), f"{cand.tokens:,}"]
        table.add_row(*row)
    return table


def _spend_table(title: str, key: str, groups: dict[str, Spend], total: Spend) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in (key, "calls", "prompt", "completion", "tokens", "USD", "share", "latency", "errors"):
        table.add_column(name, justify="left" if name == key else "right")
    for name, spent in sorted(groups.items(), key=lambda kv: -kv[1].total_tokens):
        share = spent.total_tokens / total.total_tokens if total.total_tokens else 0.0
        table.add_row(escape(name), str(spent.calls), f"{spent.prompt_tokens:,}", f"{spent.completion_tokens:,}",
                      f"{spent.total_tokens:,}", usd(spent.cost_usd, spent.cost_known), f"{share:.0%}",
                      seconds(spent.latency_s), str(spent.errors) if spent.errors else "")
    table.add_row("total", str(total.calls), f"{total.prompt_tokens:,}", f"{total.completion_tokens:,}",
                  f"{total.total_tokens:,}", usd(total.cost_usd, total.cost_known), "100%",
                  seconds(total.latency_s), str(total.errors) if total.errors else "", style="bold")
    return table


def _episodes(trace: RunTrace, width: int) -> Table:
    """Each model turn of each episode (its candidate, the reply, the action or why none was read, the
    observation) and each episode's verdict with its failing tests."""
    table = Table(title="Episode turns", title_justify="left", header_style="bold")
    table.add_column("candidate", no_wrap=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("reply")
    table.add_column("action")
    table.add_column("observation / verdict")
    for event in trace.events:
        data = event.data
        who = escape(str(data.get("candidate") or "-"))
        if event.kind in ("turn", "step"):
            action = (Text(shorten(data["action"], width // 3)) if data.get("action") else
                      Text("no action: " + shorten(data.get("error") or "", width // 3), style="yellow"))
            table.add_row(who, str(data.get("index", "")), escape(shorten(data.get("reply"), width // 3)), action,
                          escape(shorten(data.get("observation"), width // 2)))
        elif event.kind == "episode":
            failing = data.get("failing_tests") or []
            more = f" (+{data['more_failing']} more)" if data.get("more_failing") else ""
            why = (f"failing: {', '.join(failing)}{more}" if failing else data.get("reason") or "")
            table.add_row(who, "", "", Text("passed", style="green") if data.get("passed") else Text("failed", style="red"),
                          escape(f"after {data.get('steps', 0)} step(s)" + (f"; {why}" if why else "")))
    return table


def _events(trace: RunTrace, width: int) -> Table:
    table = Table(title="Events", title_justify="left", header_style="bold")
    table.add_column("time", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("data")
    for event in (e for e in trace.events if e.kind not in EPISODE_EVENTS):
        table.add_row(event.created_at.astimezone().strftime("%H:%M:%S.%f")[:-3], escape(event.kind),
                      escape(_compact(event.data, width)))
    return table


def _calls(trace: RunTrace, max_calls: int) -> Group:
    table = Table(title="Calls", title_justify="left", header_style="bold")
    adapters = any(call.adapter for call in trace.calls[:max_calls])  # a LoRA adapter's column only when used
    for name in ("#", "role", "subtask", "model", *(("adapter",) if adapters else ()), "prompt", "completion",
                 "USD", "latency", "attempt", "error"):
        table.add_column(name, justify="right" if name in ("#", "prompt", "completion", "USD", "latency",
                                                           "attempt") else "left")
    for number, call in enumerate(trace.calls[:max_calls], 1):
        adapter = [escape(PurePath(call.adapter).name if call.adapter else "-")] if adapters else []
        table.add_row(
            str(number), escape(call.role or "-"), escape(call.subtask or "-"), escape(call.model), *adapter,
            f"{call.prompt_tokens:,}", f"{call.completion_tokens:,}", usd(call.cost_usd, call.cost_known),
            f"{call.latency_s:.2f}s", str(call.attempt) if call.attempt > 1 else "",
            Text(shorten(call.error, 60), style="red") if call.error else "",
        )
    hidden = len(trace.calls) - max_calls
    note = Text(f"... and {hidden} more calls (--json shows all)", style="dim") if hidden > 0 else Text("")
    return Group(table, note)


# --- JSON ------------------------------------------------------------------------------------------
def runs_json(runs: Sequence[RunSummary]) -> str:
    """``runs list --json``: a JSON array of run summaries."""
    return json.dumps([run.model_dump(mode="json") for run in runs], indent=2)


def trace_json(trace: RunTrace) -> str:
    """``runs show ID --json``: the whole trace as one JSON object."""
    return json.dumps(trace.model_dump(mode="json"), indent=2)
