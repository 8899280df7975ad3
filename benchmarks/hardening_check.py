"""Rerun issue 14's FAILs (parsers, HTTP, budgets, lifecycle, memory; not the sandbox or SWE rows) and
print one line per FAIL: what happens now, and whether it holds.

    python -m seasoned.benchmarks.hardening_check [--skip-http] [--skip-memory]

Uses only public APIs that older versions also have, so the same script shows the "before" when run
against an older checkout. Scripted models only; no network.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HUGE = "1" + "0" * 400 + ".5"
rows: list[tuple[str, str, bool]] = []


def check(name: str):
    """Run the decorated function now; it returns (what happened, holds); an exception is a FAIL."""
    def run(fn):
        started = time.perf_counter()
        try:
            what, holds = fn()
        except BaseException as exc:  # noqa: BLE001 - the point is to report it
            what, holds = f"{type(exc).__name__}: {str(exc)[:90]}", False
        rows.append((name, f"{what} [{time.perf_counter() - started:.2f} s]", holds))
        print(f"{'holds' if holds else 'FAIL ':5}  {name}: {rows[-1][1]}", flush=True)
        return fn
    return run


def outcome(fn, *args) -> str:
    try:
        fn(*args)
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__


def parsers() -> None:
    from seasoned.agents import critic, curator, parsing, planner, solver, verifier
    from seasoned.envs import get_env
    from seasoned.envs.game24 import evaluate
    from seasoned.tools.actions import Param, ToolSpec, parse_edit_body, parse_text_action, parse_tool_call

    tools = [ToolSpec("view", "show", (Param("path", "file"),))]
    deep = "{\"a\": " * 1000 + "1" + "}" * 1000

    @check("JSON ~1000 levels deep (8 parsers)")
    def _():
        got = [outcome(parsing.extract_json, deep)] + [outcome(parsing.parse_model, deep, s) for s in
               (planner.Plan, critic.Critique, verifier.Judgement, curator.Proposal)]
        got += [outcome(parse_text_action, "```action\n" + deep + "\n```", tools),
                outcome(parse_tool_call, {"function": {"name": "view", "arguments": deep}}, tools),
                outcome(parse_text_action, deep, tools)]
        return ", ".join(got), all(g in ("ParseError", "ToolError") for g in got)

    @check("numbers like 1e400.5 / 1+400 zeros+.5 (4 environments)")
    def _():
        got = []
        for name in ("addition", "arithmetic", "sums", "wordproblems"):
            env = get_env(name)
            task = env.tasks(n=1)[0]
            for reply in (f"Answer: {HUGE}", "Answer: 1e400.5"):
                try:
                    got.append(f"{name}:{'pass' if asyncio.run(env.verify(task, reply)).passed else 'fail'}")
                except Exception as exc:  # noqa: BLE001
                    got.append(f"{name}:{type(exc).__name__}")
        return " ".join(sorted(set(got))), all(g.endswith(":fail") for g in got)

    @check("parse_tool_call with arguments '[1]', a list name, a non-dict call")
    def _():
        got = [outcome(parse_tool_call, c, tools) for c in ({"function": {"name": "view", "arguments": "[1]"}},
                                                           {"function": {"name": ["view"]}}, ["view"])]
        return ", ".join(got), all(g == "ToolError" for g in got)

    @check("extract_answer('answer' + 20,000 spaces + 'x')")
    def _():
        started = time.perf_counter()
        solver.extract_answer("answer" + " " * 20_000 + "x")
        seconds = time.perf_counter() - started
        return f"{seconds * 1000:.1f} ms", seconds < 1

    @check("extract_answer('The answer is: Answer: 42') (issue 17)")
    def _():
        got = solver.extract_answer("The answer is: Answer: 42")
        return repr(got), got == "42"

    @check("game24 checker on '1+' * 1000")
    def _():
        got = outcome(evaluate, "1+" * 1000 + "1")
        return got, got == "ExpressionError"

    @check("edit body with 2,000 '=======' lines and no REPLACE")
    def _():
        started = time.perf_counter()
        got = outcome(parse_edit_body, "a.py\n<<<<<<< SEARCH\n" + "=======\n" * 2000)
        return f"{got} in {time.perf_counter() - started:.2f} s", got == "ToolError"

    @check("planner difficulty 'nan'")
    def _():
        value = planner.Subtask(id="s1", description="x", difficulty="nan").difficulty
        return f"difficulty={value}", math.isfinite(value)


def budgets() -> None:
    from seasoned.models import Budget, Gateway, Ledger, RetryPolicy, scripted

    @check("Budget(max_tokens=NaN)")
    def _():
        try:
            budget = Budget(max_tokens=math.nan)
        except ValueError as exc:
            return f"refused: {exc}", True
        scripted.register("hc-echo", fn=lambda m, p: "ok")
        gateway = Gateway("scripted/hc-echo", ledger=Ledger())
        made = 0
        for _ in range(50):
            try:
                asyncio.run(gateway.acomplete("hi", max_tokens=8, budget=budget))
                made += 1
            except Exception:  # noqa: BLE001
                break
        return f"accepted; {made} of 50 calls made", False

    @check("a timed-out attempt is charged")
    def _():
        scripted.register("hc-slow", fn=lambda m, p: "late", delay=30)
        gateway = Gateway("scripted/hc-slow", ledger=Ledger(), retry=RetryPolicy(max_attempts=1))
        budget = Budget(max_tokens=10_000)
        error = outcome(lambda: asyncio.run(gateway.acomplete("a prompt of several words", max_tokens=50,
                                                              budget=budget, timeout=0.05)))
        return f"{error}; charged {budget.spent.tokens} tokens", budget.spent.tokens > 0


def http(tmp: Path) -> None:
    import httpx
    from seasoned.agents import verifier
    from seasoned.models import scripted
    from seasoned.server import BackgroundServer, ServerSettings, create_app

    def reply(messages, params):
        if messages[0]["content"] == verifier.SYSTEM:
            return '{"correct": true, "score": "nan", "reason": "?"}'
        return f"Answer: {params.get('seed', 0) % 3 + 41}"  # different answers, so a judge is asked

    scripted.register("hc-srv", fn=reply)
    scripted.register("hc-srv-slow", fn=reply, delay=5)
    app = create_app(ServerSettings(model="scripted/hc-srv", models=["scripted/hc-srv-slow"],
                                    db_url=f"sqlite:///{tmp}/srv.db", memory=False))
    service = app.state.service
    ask = {"model": "scripted/hc-srv", "messages": [{"role": "user", "content": "What is 40 + 2?"}]}
    bodies = {"lone surrogate": json.dumps({**ask, "messages": [{"role": "user", "content": "\ud800"}]}),
              "JSON nested 100k deep": '{"model": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
              "seed 2**64": json.dumps({**ask, "seed": 2**64}), "seed -2**63-1": json.dumps({**ask, "seed": -2**63 - 1}),
              "max_usd Infinity": json.dumps({**ask, "seasoned": {"budget": {"max_usd": math.inf}}}),
              "max_seconds Infinity": json.dumps({**ask, "seasoned": {"budget": {"max_seconds": math.inf}}})}
    with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/chat/completions", json=ask)  # warm-up
        for name, body in bodies.items():
            @check(f"HTTP {name}")
            def _(body=body):
                runs = len(service.store.list_runs(limit=10_000))
                status = client.post("/v1/chat/completions", content=body.encode()).status_code
                written = len(service.store.list_runs(limit=10_000)) - runs
                return f"{status}, {written} run(s) recorded", status == 400 and written == 0

        @check("judge score 'nan' in the SSE stream")
        def _():
            body = {**ask, "model": "best_of_n-3:scripted/hc-srv", "stream": True, "seed": 1,
                    "seasoned": {"strategy": {"judge": True}}}
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")][:-1]
            bad = [line for line in lines if "NaN" in line or "Infinity" in line]
            return f"{len(bad)} of {len(lines)} chunks hold a bare NaN", not bad and lines

        @check("a stream dropped by the client mid-run")
        def _():
            body = {**ask, "model": "best_of_n-2:scripted/hc-srv-slow", "stream": True}
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                lines = response.iter_lines()
                run_id = json.loads(next(lines)[6:])["id"].removeprefix("chatcmpl-")
                time.sleep(2)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and service.store.get_run(run_id).run.status in ("running",
                                                                                              "interrupted"):
                time.sleep(0.1)
            run = service.store.get_run(run_id).run
            return f"status {run.status}, spend {(run.spend or {}).get('tokens')} tokens", run.status == "cancelled"

        @check("ledger records of finished runs")
        def _():
            before = len(service.ledger.calls())
            for _ in range(5):
                client.post("/v1/chat/completions", json={**ask, "model": "best_of_n-2:scripted/hc-srv"})
            kept = len(service.ledger.calls()) - before
            return f"{kept} records kept in memory after 5 more runs", kept == 0


def memory(tmp: Path) -> None:
    from seasoned.memory import MemoryBank, MemoryItem

    for damage in ("truncated", "zeroed", "a file"):
        @check(f"Chroma index {damage}")
        def _(damage=damage):
            folder = tmp / damage.replace(" ", "")
            folder.mkdir()
            url = f"sqlite:///{folder / 'm.db'}"
            with MemoryBank.open(url) as bank:
                bank.add(MemoryItem(content="Add the tens first, then the ones."))
            index = folder / "m.db.chroma"
            database = index / "chroma.sqlite3"
            if damage == "truncated":
                database.write_bytes(database.read_bytes()[:1000])
            elif damage == "zeroed":
                database.write_bytes(b"\0" * database.stat().st_size)
            else:
                shutil.rmtree(index)
                index.write_text("x")
            with MemoryBank.open(url) as bank:
                hits = bank.retrieve("tens and ones", k=1, track=False)
            return f"opened, {len(hits)} hit(s) after rebuild", len(hits) == 1

    source = tmp / "source.db"
    with MemoryBank.open(f"sqlite:///{source}", namespace="ops") as bank:
        bank.add(MemoryItem(content="Read the last 50 lines of the log first."))
        bank.export_jsonl(tmp / "good.jsonl")
    good = json.loads((tmp / "good.jsonl").read_text())
    cases = {"duplicate versions": lambda r: r["versions"].append(dict(r["versions"][0])),
             "NaN utility": None, "control character namespace": lambda r: r["item"].update(namespace="a\x00b"),
             "1000-character id": lambda r: r["item"].update(id="a" * 1000)}
    for name, change in cases.items():
        @check(f"seasoned-admin import, {name}")
        def _(name=name, change=change):
            record = json.loads(json.dumps(good))
            line = json.dumps(record).replace('"utility": 0.5', '"utility": NaN') if change is None else None
            if change is not None:
                change(record)
                line = json.dumps(record)
            path = tmp / f"{name.replace(' ', '_')}.jsonl"
            path.write_text(line + "\n")
            target = tmp / f"{name.replace(' ', '_')}.db"
            done = subprocess.run([sys.executable, "-m", "seasoned.memory", "import", str(path), "--db",
                                   f"sqlite:///{target}", "-n", "fresh"], capture_output=True, text=True, check=False)
            import sqlite3

            rows_ = sqlite3.connect(target).execute("select count(*) from memory_namespaces").fetchone()[0] \
                if target.exists() else 0
            traceback = "Traceback" in done.stderr
            return (f"exit {done.returncode}, {'traceback' if traceback else 'one line'}, {rows_} namespace row(s)",
                    done.returncode == 1 and not traceback and rows_ == 0)

    bwrap = shutil.which("bwrap")

    @check("read-only SEASONED_HOME: seasoned-admin stats/search")
    def _():
        if not bwrap:
            return "bwrap not installed: not checked", True
        home = source.parent
        got = []
        for args in (["stats"], ["search", "log lines"]):
            done = subprocess.run([bwrap, "--dev-bind", "/", "/", "--ro-bind", str(home), str(home), "--",
                                   sys.executable, "-m", "seasoned.memory", *args, "--db", f"sqlite:///{source}",
                                   "-n", "ops", "--json"], capture_output=True, text=True, check=False,
                                  env={**os.environ, "SEASONED_HOME": str(home)})
            got.append(done.returncode)
        return f"exit codes {got}", got == [0, 0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    sys.setrecursionlimit(1000)
    with tempfile.TemporaryDirectory(prefix="seasoned-hardening-") as folder:
        os.environ.setdefault("SEASONED_HOME", folder)
        parsers()
        budgets()
        if not args.skip_http:
            http(Path(folder))
        if not args.skip_memory:
            memory(Path(folder))
    failed = [name for name, _, holds in rows if not holds]
    print(f"{len(rows) - len(failed)} of {len(rows)} hold" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
