"""What `seasoned serve` keeps on disk survives concurrency, kills and careless exits (issue 22 rows 14-17):
checkpoints under load while another writer holds the lock, runs left `running` by a killed server marked
`interrupted` at the next start (and resumable), two processes opening a fresh SEASONED_HOME at once, and a
process whose Agents were never closed exiting at once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from seasoned.models import scripted
from seasoned.server import BackgroundServer, ServerSettings, create_app
from serve_scripted import ServerProcess, wait_for

PY = sys.executable


def ask(model: str, content: str = "What is 40 + 2?", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def test_checkpoints_wait_for_another_writer_under_16_concurrent_requests(tmp_path, monkeypatch):
    """Another writer holds the checkpoint database for 6 s (longer than SQLite's default 5 s) while 16
    requests at a time run on two models (two Agents): every request is answered, none meets "database
    is locked"."""
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    scripted.register("ck-a", fn=lambda m, p: "Answer: 42")
    scripted.register("ck-b", fn=lambda m, p: "Answer: 42")
    settings = ServerSettings(model="scripted/ck-a", models=["scripted/ck-b"], memory=False,
                              db_url=f"sqlite:///{tmp_path}/seasoned.db")
    app = create_app(settings)
    with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        assert client.post("/v1/chat/completions", json=ask("scripted/ck-a")).status_code == 200
        assert client.post("/v1/chat/completions", json=ask("scripted/ck-b")).status_code == 200
        held = threading.Event()

        def hold_the_lock() -> None:
            other = sqlite3.connect(tmp_path / "checkpoints.sqlite", timeout=60, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(6)
            other.execute("COMMIT")
            other.close()

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        held.wait(60)

        def one(i: int) -> int:
            model = "scripted/ck-a" if i % 2 else "scripted/ck-b"
            return client.post("/v1/chat/completions", json=ask(model, f"Request {i}: what is 40 + 2?")).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(one, range(32)))
        holder.join()
    assert codes == [200] * 32
    runs = app.state.service.store.list_runs(limit=100)
    assert len(runs) == 34 and {r.status for r in runs} == {"completed"}


def open_stream(url: str, content: str) -> tuple[str, httpx.Client, object, object]:
    """Start a streamed request and return its run id (from the first chunk), the client, the response
    context and its line iterator: all kept, since dropping the iterator would close the connection."""
    client = httpx.Client(base_url=url, timeout=120)
    context = client.stream("POST", "/v1/chat/completions", json=ask("scripted/proc", content, stream=True))
    response = context.__enter__()
    lines = response.iter_lines()
    first = next(line for line in lines if line.startswith("data: "))
    return json.loads(first[6:])["id"].removeprefix("chatcmpl-"), client, context, lines


def test_runs_of_a_killed_server_are_interrupted_at_restart_and_resumable(tmp_path):
    from seasoned.runs import RunStore

    db = f"sqlite:///{tmp_path}/seasoned.db"
    delay = tmp_path / "delay"
    delay.write_text("60")  # the model hangs: the runs are in flight when the server is killed
    first = ServerProcess(tmp_path, db, delay_file=delay).ready()
    opened = []
    try:
        for i in range(3):
            opened.append(open_stream(first.url, f"Question {i}: what is 40 + 2?"))
        ids = [run_id for run_id, *_ in opened]
        with RunStore.open(db) as store:
            wait_for(lambda: {store.get_run(i).run.status for i in ids} == {"running"}, "the runs to start")
        first.kill()
    finally:
        for _, client, *_ in opened:
            client.close()
        first.stop()
    delay.write_text("0")
    second = ServerProcess(tmp_path, db, delay_file=delay).ready()
    try:
        with RunStore.open(db) as store:  # marked at start-up, before any request
            runs = [store.get_run(i).run for i in ids]
        assert {r.status for r in runs} == {"interrupted"}
        assert all("resume" in (r.error or "") for r in runs)
        reply = httpx.post(f"{second.url}/v1/runs/{ids[0]}/resume", timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["seasoned"]["answer"] == "42" and reply.json()["seasoned"]["run_id"] == ids[0]
        again = httpx.post(f"{second.url}/v1/runs/{ids[0]}/resume", timeout=60)
        assert again.status_code == 409 and again.json()["error"]["code"] == "run_completed"
        with RunStore.open(db) as store:
            resumed = store.get_run(ids[0]).run
        assert resumed.status == "completed" and resumed.resumes == 1
    finally:
        second.stop()


def test_two_processes_open_a_fresh_home_at_once(tmp_path):
    """Three processes open (and write to) the same fresh SEASONED_HOME at the same instant: all succeed,
    and none takes the index another is creating for damage."""
    script = ("import sys, time\n"
              "from seasoned.memory import MemoryBank, MemoryItem\n"
              "start = float(sys.argv[1])\n"
              "while time.time() < start: time.sleep(0.001)\n"
              "bank = MemoryBank.open(namespace='x')\n"
              "bank.add(MemoryItem(kind='strategy', title='t' + sys.argv[2], content='Multiply pairs first ' + sys.argv[2]))\n"
              "bank.close()\nprint('ok')\n")
    env = {**os.environ, "SEASONED_HOME": str(tmp_path)}
    env.pop("SEASONED_DB_URL", None)
    start = time.time() + 8  # after every interpreter has imported what it needs
    procs = [subprocess.Popen([PY, "-c", script, str(start), str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-1500:] for _, err in results]
    assert not list(tmp_path.glob("*.damaged-*"))


def test_a_first_open_waits_for_the_one_in_progress(tmp_path):
    """The mechanism behind the test above, deterministically: while one process holds the index's
    first-open lock, another open waits for it."""
    import fcntl

    from seasoned.memory import MemoryBank

    lock = os.open(tmp_path / ".memory.db.chroma.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    opened = threading.Event()

    def open_bank() -> None:
        MemoryBank.open(f"sqlite:///{tmp_path}/memory.db", namespace="x", chroma_path=tmp_path / "memory.db.chroma").close()
        opened.set()

    thread = threading.Thread(target=open_bank, daemon=True)
    thread.start()
    try:
        assert not opened.wait(3)  # held back by the lock
    finally:
        os.close(lock)
    assert opened.wait(120)


def test_a_process_whose_agents_were_never_closed_exits(tmp_path):
    script = ("import asyncio\n"
              "from seasoned.graphs import Agent\n"
              "from seasoned.models import scripted\n"
              "scripted.register('exit', fn=lambda m, p: 'Answer: 42')\n"
              "async def main():\n"
              "    agent = Agent('scripted/exit', strategy='single')\n"
              "    print((await agent.arun('What is 40 + 2?')).answer, flush=True)\n"
              "asyncio.run(main())\n")
    env = {**os.environ, "SEASONED_HOME": str(tmp_path), "SEASONED_DB_URL": f"sqlite:///{tmp_path}/x.db"}
    try:
        done = subprocess.run([PY, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: it waits for a thread of its never-closed Agent")
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip() == "42"
