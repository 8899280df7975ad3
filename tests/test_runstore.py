"""The run store: runs, subtasks, candidates, verdicts, events and gateway calls round-trip through SQL."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from types import SimpleNamespace

import pytest
from rich.console import Console
from seasoned.cli.views import print_runs, print_trace, runs_json, trace_json
from seasoned.errors import MemoryConfigError
from seasoned.memory.db import Database
from seasoned.models import (
    Gateway,
    Ledger,
    ModelCallError,
    RetryPolicy,
    SeasonedError,
    Spend,
    call_tags,
    scripted,
)
from seasoned.models.ledger import CallRecord
from seasoned.runs import UNTAGGED, CandidateNotFound, RunNotFound, RunStore, RunSummary, RunTrace
from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError

NO_RETRY = RetryPolicy(max_attempts=1, base_delay=0.0)


# --- databases: a SQLite file per test, and PostgreSQL when a server can be started here -----------------
def _start_postgres() -> tuple[str, str] | None:
    """Start a throw-away PostgreSQL server; returns (base URL, data dir) or None if it cannot run here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        return None
    bindir = os.path.dirname(initdb[-1])
    root = tempfile.mkdtemp(prefix="seasoned-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            return None
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = os.path.join(root, "data")
    try:
        subprocess.run([*as_user, f"{bindir}/initdb", "-N", "-D", data, "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"),
                        "-o", f"-k {root} -p {port} -c listen_addresses='' -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(root, ignore_errors=True)
        return None
    return f"postgresql+psycopg://postgres@/{{db}}?host={root}&port={port}", root


@pytest.fixture(scope="module")
def postgres_server():
    started = _start_postgres()
    if started is None:
        pytest.skip("PostgreSQL (Debian's postgresql + psycopg) is not available here")
    url, root = started
    yield url
    bindir = os.path.dirname(max(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", os.path.join(root, "data"), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60, check=False)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/runs.db"
    import psycopg

    template = request.getfixturevalue("postgres_server")
    name = f"runs_{uuid.uuid4().hex[:12]}"
    admin = template.format(db="postgres").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return template.format(db=name)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/runs.db"


@pytest.fixture
def store(sqlite_url):
    with RunStore.open(sqlite_url) as opened:
        yield opened


def _gateway(name: str, reply: str = "the answer is 42") -> Gateway:
    scripted.register(name, fn=lambda messages, params: reply)
    return Gateway(f"scripted/{name}", ledger=Ledger(), retry=NO_RETRY)


def _start(store: RunStore, run_id: str, **kwargs) -> None:
    defaults = {"task": f"task of {run_id}", "model": "scripted/x", "strategy": "adaptive"}
    store.start_run(run_id, **{**defaults, **kwargs})


# --- the whole trace ---------------------------------------------------------------------------------------
def test_run_round_trips_with_gateway_calls(db_url):
    gateway = _gateway("runstore-solver")
    scripted.register("runstore-broken", replies=[scripted.bad_request()])
    store = RunStore.open(db_url)
    unsubscribe = store.attach(gateway.ledger)
    run = "run-trip"
    store.start_run(run, task="What is 6 * 7? Then add 0.", model="scripted/runstore-solver", strategy="adaptive",
                    namespace="math", budget={"max_tokens": 4000}, env="arithmetic", task_id="t-17",
                    options={"n": 4})

    with call_tags(run_id=run):
        with call_tags(role="planner"):
            gateway.complete("plan: split the task")
        store.add_subtask(run, "s1", description="multiply 6 by 7", kind="arithmetic", difficulty=0.3,
                          depends_on=[], allocation={"tokens": 2500})
        store.add_subtask(run, "s2", description="add zero", kind="arithmetic", difficulty=0.1,
                          depends_on=["s1"], allocation={"tokens": 1500})
        with call_tags(subtask="s1", role="solver"):
            samples = gateway.sample("6 * 7 = ?", 3)
        with call_tags(subtask="s1", role="verifier"):
            judge = gateway.complete("is 42 right?")
            with pytest.raises(ModelCallError):
                gateway.complete("judge again", model="scripted/runstore-broken")
        with call_tags(subtask="s2", role="solver"):
            second = gateway.complete("42 + 0 = ?")
    gateway.complete("a call outside any run")  # untagged: not part of the trace
    with call_tags(run_id="another-run", role="solver"):
        gateway.complete("someone else's call")

    # buffered by the listener (the planner's call went out with add_subtask's transaction)
    assert store.pending_calls == 7
    ids = [store.add_candidate(run, subtask="s1", index=i, text=s.text, answer="42" if i else "41",
                               verdicts=[{"verifier": "answer_check", "passed": bool(i), "score": float(i > 0)}],
                               score=0.9 if i else 0.1, status="accepted" if i == 1 else "rejected",
                               tokens=s.total_tokens, call_ids=[s.call_id])
           for i, s in enumerate(samples)]
    assert store.pending_calls == 0  # written with the first candidate, in the same transaction
    store.add_verdict(ids[1], {"verifier": "llm_judge", "passed": True, "score": 0.8,
                               "details": "looks right", "call_id": judge.call_id})
    store.add_candidate(run, subtask="s2", index=0, text=second.text, answer="42", verdicts=[], score=None,
                        status="accepted", tokens=second.total_tokens, call_ids=[second.call_id])
    store.record_event(run, "allocate", {"policy": "difficulty", "tokens": {"s1": 2500, "s2": 1500}})
    store.record_event(run, "stop", {"subtask": "s1", "reason": "verified", "wave": 1})
    store.finish_subtask(run, "s1", status="done", answer="42", verified=True, spend={"tokens": 300})
    store.finish_subtask(run, "s2", status="done", answer="42", verified=False, spend={"tokens": 80})
    store.finish_run(run, status="succeeded", answer="42", verified=True, confidence=0.93,
                     spend={"tokens": 380, "seconds": 1.5})
    store.record_feedback(run, True, "checked by hand")
    unsubscribe()
    gateway.complete("after detaching", run_id=run)  # not recorded any more

    trace = RunStore.open(db_url).get_run(run)  # a fresh store reads back what the first one wrote
    ledger = gateway.ledger
    assert trace.run.status == "succeeded" and trace.run.answer == "42" and trace.run.verified
    assert trace.run.confidence == pytest.approx(0.93)
    assert (trace.run.namespace, trace.run.env, trace.run.task_id) == ("math", "arithmetic", "t-17")
    assert trace.run.budget == {"max_tokens": 4000} and trace.run.options == {"n": 4}
    assert trace.run.spend == {"tokens": 380, "seconds": 1.5} and trace.run.seconds == 1.5
    assert trace.run.finished_at is not None and trace.run.finished_at.tzinfo is not None
    assert trace.run.feedback is True and trace.feedback[0].comment == "checked by hand"

    assert [s.id for s in trace.subtasks] == ["s1", "s2"]
    s1, s2 = trace.subtasks
    assert s1.allocation == {"tokens": 2500} and s1.difficulty == pytest.approx(0.3) and s1.verified is True
    assert s2.depends_on == ["s1"] and s2.status == "done" and s2.spend == {"tokens": 80}

    assert [(c.subtask, c.index) for c in trace.candidates] == [("s1", 0), ("s1", 1), ("s1", 2), ("s2", 0)]
    accepted = trace.candidates[1]
    assert accepted.id == ids[1] and accepted.status == "accepted" and accepted.answer == "42"
    assert [(v.verifier, v.passed) for v in accepted.verdicts] == [("answer_check", True), ("llm_judge", True)]
    assert accepted.verdicts[1].details == {"call_id": judge.call_id, "details": "looks right"}
    assert trace.candidates[0].verdicts[0].passed is False and trace.candidates[0].score == pytest.approx(0.1)
    call_ids = {c.id for c in trace.calls}
    assert all(set(c.call_ids) <= call_ids for c in trace.candidates)

    assert [e.kind for e in trace.events] == ["allocate", "stop"]
    assert trace.events[1].data == {"subtask": "s1", "reason": "verified", "wave": 1}

    expected = ledger.calls(run_id=run)[:-1]  # the call made after detaching is not in the trace
    assert call_ids == {r.id for r in expected} and len(trace.calls) == 7
    assert [c.error is not None for c in trace.calls].count(True) == 1
    assert trace.totals.total_tokens == sum(r.total_tokens for r in expected) == trace.run.tokens
    assert trace.run.calls == 7
    for role in ("planner", "solver", "verifier"):
        totals = ledger.totals(run_id=run, role=role)
        got = trace.by_role[role]
        assert (got.calls, got.prompt_tokens, got.completion_tokens, got.errors) == (
            totals.calls, totals.prompt_tokens, totals.completion_tokens, totals.errors)
        assert got.cost_usd == pytest.approx(totals.cost_usd)
    assert set(trace.by_role) == {"planner", "solver", "verifier"}
    assert trace.by_subtask[UNTAGGED].calls == 1  # the planner's call belongs to no subtask
    assert trace.by_subtask["s1"].calls == 5 and trace.by_subtask["s2"].calls == 1
    by_subtask = store.spend_by(run, "subtask")
    assert by_subtask["s1"].total_tokens == ledger.totals(run_id=run, subtask="s1").total_tokens
    assert store.spend_by(run, "model").keys() == {"scripted/runstore-solver", "scripted/runstore-broken"}
    with pytest.raises(ValueError, match="spend key"):
        store.spend_by(run, "namespace")

    # the trace survives its JSON form (what the HTTP service and `runs show --json` give)
    assert RunTrace.model_validate(json.loads(trace_json(trace))) == trace
    store.close()


def test_unknown_ids_raise_clear_errors(store):
    with pytest.raises(RunNotFound, match="run 'nope' not found") as caught:
        store.get_run("nope")
    assert isinstance(caught.value, SeasonedError) and str(caught.value).startswith("run 'nope'")
    for write in (lambda: store.spend_by("nope"),
                  lambda: store.record_event("nope", "x", {}),
                  lambda: store.record_feedback("nope", True),
                  lambda: store.add_subtask("nope", "s", description="", kind="", difficulty=None,
                                            depends_on=[], allocation={}),
                  lambda: store.add_candidate("nope", subtask="s", index=0, text="", answer=None, verdicts=[],
                                              score=None, status="new", tokens=0, call_ids=[]),
                  lambda: store.finish_run("nope", status="failed", answer=None, verified=False,
                                           confidence=None, spend={})):
        with pytest.raises(RunNotFound):
            write()
    with pytest.raises(CandidateNotFound, match="candidate 'c0' not found"):
        store.add_verdict("c0", {"verifier": "tests", "passed": True})
    _start(store, "r")
    cid = store.add_candidate("r", subtask="s", index=0, text="t", answer=None, verdicts=[], score=None,
                              status="new", tokens=0, call_ids=[])
    with pytest.raises(ValueError, match="verifier"):
        store.add_verdict(cid, {"passed": True})
    with pytest.raises(ValueError, match="run_id"):
        _start(store, "x" * 65)


def test_resumed_run_keeps_its_record_and_candidates(store):
    _start(store, "r1", budget={"max_tokens": 100})
    first = store.add_candidate("r1", subtask="main", index=0, text="draft", answer="7",
                                verdicts=[{"verifier": "tests", "passed": False}], score=0.2, status="rejected",
                                tokens=12, call_ids=["c1"])
    store.record_event("r1", "node_end", {"node": "generate"})
    store.finish_run("r1", status="failed", answer=None, verified=False, confidence=None, spend={},
                     error="killed")

    _start(store, "r1", task="a different task text", strategy="best_of_n")
    trace = store.get_run("r1")
    assert trace.run.status == "running" and trace.run.resumes == 1
    assert trace.run.error is None and trace.run.finished_at is None
    assert trace.run.task == "task of r1" and trace.run.strategy == "adaptive"  # the record is kept
    assert [c.id for c in trace.candidates] == [first]
    assert [e.kind for e in trace.events] == ["node_end", "resumed"]
    assert trace.events[1].data["strategy"] == "best_of_n"

    # a node replayed after the resume rewrites its sample in place instead of duplicating it
    again = store.add_candidate("r1", subtask="main", index=0, text="redo", answer="8",
                                verdicts=[{"verifier": "tests", "passed": True}], score=1.0, status="accepted",
                                tokens=15, call_ids=["c2"])
    store.add_candidate("r1", subtask="main", index=1, text="more", answer="8", verdicts=[], score=None,
                        status="pending", tokens=3, call_ids=[])
    trace = store.get_run("r1")
    assert again == first
    assert [(c.index, c.text) for c in trace.candidates] == [(0, "redo"), (1, "more")]
    assert [(v.verifier, v.passed) for v in trace.candidates[0].verdicts] == [("tests", True)]


def test_record_result_writes_a_finished_run_and_spend_totals_its_calls(store):
    gateway = _gateway("runstore-result")
    store.attach(gateway.ledger)
    _start(store, "done")
    with call_tags(run_id="done", role="solver"):
        gateway.complete("q1", max_tokens=8)
        gateway.complete("q2", max_tokens=8)
    with call_tags(run_id="done"):
        gateway.complete("untagged", max_tokens=8)
    spend = store.spend("done")
    calls = gateway.ledger.calls(run_id="done")
    assert spend.calls == 3 and spend.tokens == sum(c.total_tokens for c in calls) == spend.total_tokens
    assert spend.by_role == {"solver": sum(c.total_tokens for c in calls if c.role == "solver"),
                             "other": calls[-1].total_tokens}
    spend.seconds = 2.5

    verdicts = [{"candidate_id": "a", "verifier": "env:x", "passed": True, "score": 1.0},
                {"candidate_id": "a", "verifier": "judge:m", "passed": True, "score": 0.5},
                {"candidate_id": "b", "verifier": "env:x", "passed": False, "score": 0.0}]
    candidates = [{"id": "a", "text": "Answer: 42", "answer": "42", "status": "ok", "tokens": 7},
                  {"id": "b", "text": "Answer: 41", "answer": "41", "status": "ok"}]
    subtasks = [{"id": "s1", "description": "add", "kind": "math", "difficulty": 0.3, "depends_on": [],
                 "allocation": {"tokens": 50}, "result": {"answer": "42", "verified": True, "tokens": 9}},
                {"id": "s2", "description": "check", "kind": "check", "difficulty": None, "depends_on": ["s1"],
                 "allocation": None, "result": None}]
    result = SimpleNamespace(run_id="done", answer="42", verified=True, confidence=0.9, verified_by="env:x",
                             memory_ids=["m1"], subtasks=subtasks, candidates=candidates, verdicts=verdicts,
                             spend=spend)
    store.record_result(result, namespace="ns", outcome_recorded=True)

    trace = store.get_run("done")
    assert (trace.run.status, trace.run.answer, trace.run.verified, trace.run.confidence) == (
        "completed", "42", True, 0.9)
    assert trace.run.spend["tokens"] == spend.tokens and trace.run.seconds == 2.5
    assert trace.run.tokens == spend.tokens and trace.run.calls == 3
    outcome = [e.data for e in trace.events if e.kind == "outcome"]
    assert outcome == [{"verified": True, "verified_by": "env:x", "memory_ids": ["m1"], "namespace": "ns",
                        "outcome_recorded": True}]
    assert [(s.id, s.status, s.verified, s.depends_on) for s in trace.subtasks] == [
        ("s1", "completed", True, []), ("s2", "skipped", False, ["s1"])]
    assert trace.subtasks[0].spend == {"tokens": 9, "usd": None, "calls": None, "allocated": None}
    main = [(c.index, c.answer, c.score, c.tokens, [v.verifier for v in c.verdicts]) for c in trace.candidates]
    assert main == [(0, "42", 1.0, 7, ["env:x", "judge:m"]), (1, "41", 0.0, 0, ["env:x"])]


def test_listing_order_filters_and_totals(store, sqlite_url):
    gateway = _gateway("runstore-lister", reply="one two three")
    store.attach(gateway.ledger)
    for run_id, namespace in (("a", "alpha"), ("b", "beta"), ("c", "alpha"), ("d", "alpha")):
        _start(store, run_id, namespace=namespace)
    gateway.complete("hello", run_id="c", role="solver")
    gateway.complete("hello again", run_id="c", role="critic")
    store.finish_run("a", status="succeeded", answer="x", verified=True, confidence=1.0,
                     spend={"tokens": 55, "cost_usd": 0.25, "calls": 2, "seconds": 3.0})
    store.finish_run("b", status="failed", answer=None, verified=False, confidence=None, spend={})
    store.finish_run("c", status="succeeded", answer="y", verified=False, confidence=0.4, spend={})
    store.record_feedback("c", True)
    store.record_feedback("c", False, "the user says no")

    assert [r.id for r in store.list_runs()] == ["d", "c", "b", "a"]  # newest first
    assert [r.id for r in store.list_runs(limit=2)] == ["d", "c"]
    assert [r.id for r in store.list_runs(namespace="alpha")] == ["d", "c", "a"]
    assert [r.id for r in store.list_runs(status="succeeded")] == ["c", "a"]
    assert [r.id for r in store.list_runs(namespace="alpha", status="running")] == ["d"]
    assert store.list_runs(namespace="nobody") == []
    with pytest.raises(ValueError, match="limit"):
        store.list_runs(limit=0)

    runs = {r.id: r for r in store.list_runs()}
    recorded = gateway.ledger.totals(run_id="c")
    assert (runs["c"].tokens, runs["c"].calls) == (recorded.total_tokens, 2)
    assert runs["c"].feedback is False  # the latest feedback counts
    assert (runs["a"].tokens, runs["a"].cost_usd, runs["a"].calls, runs["a"].seconds) == (55, 0.25, 2, 3.0)
    assert runs["d"].status == "running" and runs["d"].finished_at is None and runs["d"].feedback is None
    assert all(isinstance(r, RunSummary) and r.created_at.tzinfo is not None for r in runs.values())
    json.loads(runs_json(list(runs.values())))  # serialisable for --json and the HTTP service


def test_two_stores_on_one_sqlite_file_see_each_others_writes(sqlite_url):
    gateway = _gateway("runstore-shared")
    writer, reader = RunStore.open(sqlite_url), RunStore.open(sqlite_url)
    writer.attach(gateway.ledger)
    _start(writer, "shared")
    assert [r.id for r in reader.list_runs()] == ["shared"]
    gateway.complete("hi", run_id="shared", role="solver")
    assert reader.get_run("shared").calls == []  # still in the writer's buffer
    assert writer.flush() == 1 and writer.flush() == 0
    assert [c.role for c in reader.get_run("shared").calls] == ["solver"]
    reader.record_event("shared", "note", {"from": "reader"})
    reader.record_feedback("shared", True)
    trace = writer.get_run("shared")
    assert [e.kind for e in trace.events] == ["note"] and trace.run.feedback is True
    writer.close()
    reader.close()


def test_calls_survive_a_failed_flush_and_are_written_once(store, monkeypatch):
    gateway = _gateway("runstore-flaky-db")
    store.attach(gateway.ledger)
    _start(store, "f")
    gateway.complete("one", run_id="f")
    gateway.complete("two", run_id="f")
    record = gateway.ledger.calls(run_id="f")[0]
    store.record_call(record)  # the same record twice is stored once

    real_write = store.db.write

    def broken():
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(store.db, "write", broken)
    with pytest.raises(OperationalError):
        store.flush()
    assert store.pending_calls == 3  # nothing lost
    monkeypatch.setattr(store.db, "write", real_write)
    assert store.flush() == 2
    assert {c.id for c in store.get_run("f").calls} == {r.id for r in gateway.ledger.calls(run_id="f")}
    store.record_call(record)
    assert store.flush() == 0  # already stored


def test_events_accept_any_data_as_json(store):
    _start(store, "e")
    store.record_event("e", "stop", {"reason": "budget", "scores": {0.5, 1.5}, "obj": object.__name__,
                                     "summary": RunSummary.model_fields["id"].annotation})
    store.record_event("e", "list", [1, 2])
    events = store.get_run("e").events
    assert sorted(events[0].data["scores"]) == [0.5, 1.5]
    assert events[1].data == {"value": [1, 2]}


def test_default_url_is_the_memory_database(sqlite_url, monkeypatch):
    monkeypatch.setenv("SEASONED_DB_URL", sqlite_url)
    with RunStore.open() as store:
        assert store.db.url == sqlite_url
        _start(store, "m")
    tables = set(inspect(Database(sqlite_url).read_engine).get_table_names())
    assert {"memory_items", "run_runs", "run_calls", "run_candidates", "run_verdicts"} <= tables
    with pytest.raises(MemoryConfigError, match="SEASONED_DB_URL"):
        RunStore.open("sqlite:////no/such/dir/runs.db")


def test_views_print_the_list_and_the_trace(store):
    gateway = _gateway("runstore-view")
    store.attach(gateway.ledger)
    _start(store, "v1", task="Compute [bold]17 * 3[/bold] please " + "and more words " * 20)
    store.add_subtask("v1", "s1", description="multiply", kind="arithmetic", difficulty=0.5, depends_on=[],
                      allocation={"tokens": 900})
    with call_tags(run_id="v1", subtask="s1", role="solver"):
        reply = gateway.complete("17 * 3")
    store.add_candidate("v1", subtask="s1", index=0, text=reply.text, answer="51",
                        verdicts=[{"verifier": "answer_check", "passed": True, "score": 1.0}], score=1.0,
                        status="accepted", tokens=reply.total_tokens, call_ids=[reply.call_id])
    store.record_event("v1", "stop", {"reason": "verified"})
    store.finish_run("v1", status="succeeded", answer="51", verified=True, confidence=0.9, spend={})

    console = Console(record=True, width=220, color_system=None)
    print_runs(store.list_runs(), console)
    listing = console.export_text()
    assert "v1" in listing and "succeeded" in listing and "[bold]17" in listing and "…" in listing
    assert f"{reply.total_tokens:,}" in listing

    console = Console(record=True, width=220, color_system=None)
    print_trace(store.get_run("v1"), console)
    shown = console.export_text()
    for expected in ("run v1", "Subtasks", "tokens=900", "Candidates", "answer_check: pass", "51",
                     "Spend per role", "solver", "Events", "verified", "Calls", "scripted/runstore-view"):
        assert expected in shown, expected

    console = Console(record=True, width=120, color_system=None)
    print_runs([], console)
    assert "No runs recorded yet" in console.export_text()


# --- lean writes: deferred events, a run's end in one transaction, columns added later ----------------------
async def test_deferred_events_are_written_within_the_flush_delay_or_with_the_result(store, sqlite_url,
                                                                                      monkeypatch):
    from seasoned.runs import store as store_module

    monkeypatch.setattr(store_module, "FLUSH_DELAY_S", 0.05)
    reader = RunStore.open(sqlite_url)
    _start(store, "d")
    store.record_event("d", "decision", {"action": "sample"}, defer=True)
    store.record_event("nobody", "decision", {}, defer=True)  # a run that does not exist: dropped, no error
    assert reader.get_run("d").events == []  # buffered by the writer
    await asyncio.sleep(0.5)  # the writer's timer on this loop writes it
    assert [e.data for e in reader.get_run("d").events] == [{"action": "sample"}]
    assert store.pending_calls == 0

    monkeypatch.setattr(store_module, "FLUSH_DELAY_S", 60.0)
    store.record_event("d", "decision", {"action": "select"}, defer=True)
    result = SimpleNamespace(run_id="d", answer="42", verified=False, confidence=0.5, verified_by=None,
                             memory_ids=[], subtasks=[], verdicts=[],
                             candidates=[{"id": "main-w1-0", "text": "Answer: 42", "answer": "42", "status": "ok"}],
                             spend=Spend(tokens=3, calls=1))
    store.record_result(result, namespace="default", outcome_recorded=False)
    trace = reader.get_run("d")
    assert [e.kind for e in trace.events] == ["decision", "decision", "outcome"]
    assert trace.run.status == "completed" and [c.answer for c in trace.candidates] == ["42"]
    reader.close()


def test_a_call_records_its_adapter_also_in_a_database_made_before_the_column(sqlite_url):
    with RunStore.open(sqlite_url) as store:
        _start(store, "old")
    engine = Database(sqlite_url).write_engine
    with engine.begin() as conn:  # the table as an older version made it
        conn.exec_driver_sql("ALTER TABLE run_calls DROP COLUMN adapter")
    assert "adapter" not in {c["name"] for c in inspect(engine).get_columns("run_calls")}

    with RunStore.open(sqlite_url) as store:
        store.record_call(CallRecord(model="local/smollm2-135m", run_id="old", role="solver",
                                     adapter="/home/u/.seasoned/adapters/ns-1.gguf"))
        store.record_call(CallRecord(model="local/smollm2-135m", run_id="old", role="judge"))
        trace = store.get_run("old")
    assert [c.adapter for c in trace.calls] == ["/home/u/.seasoned/adapters/ns-1.gguf", None]
    console = Console(record=True, width=220, color_system=None)
    print_trace(trace, console)
    shown = console.export_text()
    assert "adapter" in shown and "ns-1.gguf" in shown and "/home/u" not in shown


def test_verifier_records_from_concurrent_writers_are_all_counted(db_url):
    """Replicas on one database credit the same verifier at once: no count is lost (read-add-write-back
    under READ COMMITTED lost some on PostgreSQL)."""
    import threading

    from seasoned.runs.verifier_stats import VerifierStats

    writers = [VerifierStats(Database(db_url)) for _ in range(4)]
    barrier = threading.Barrier(len(writers))

    def credit(stats: VerifierStats) -> None:
        barrier.wait()
        for i in range(25):
            stats.record("ns", "judge:local", correct=i % 5 != 0)

    threads = [threading.Thread(target=credit, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert VerifierStats(Database(db_url)).counts("ns", "judge:local") == (100, 20)


def test_channel_credits_from_concurrent_writers_are_all_counted(db_url):
    """The memory channel counts the bandit reads: replicas crediting one channel at once lose nothing."""
    import threading

    from seasoned.memory.channels import ChannelStats

    writers = [ChannelStats(Database(db_url)) for _ in range(4)]
    for writer in writers:
        from seasoned.memory.db import Base

        Base.metadata.create_all(writer.db.write_engine)
    barrier = threading.Barrier(len(writers))

    def credit(stats: ChannelStats) -> None:
        barrier.wait()
        for _ in range(20):
            stats.credit_question("ns", "local/m", "addition", "demos", passed=1, drawn=4)

    threads = [threading.Thread(target=credit, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = ChannelStats(Database(db_url)).counts("ns", "local/m", "addition")["demos"]
    assert (counts.successes, counts.failures) == (20.0, 60.0)
