"""Two `seasoned serve` replicas on one PostgreSQL server and one Chroma server behave as one service
(issue 24 items 3-4): a load behind a round-robin client; runs in flight on a replica killed with kill -9
are resumed on the other from their PostgreSQL checkpoints (no run lost); memory writes from both replicas
at once (feedback credits on one shared item) all land; the per-key limit on requests in flight holds
across replicas. Real servers, all on 127.0.0.1, started here."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from seasoned.memory import MemoryBank, MemoryItem
from seasoned.runs import RunStore
from serve_scripted import ServerProcess, free_port, wait_for
from test_memory_postgres import pg_url  # noqa: F401 - the PostgreSQL server fixture

pytestmark = pytest.mark.postgres
KEY1, KEY2 = "replica-key-1-0123456789", "replica-key-2-0123456789"
NAMESPACE = "shared"
REQUESTS, CLIENTS = 16, 6


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory):
    """`chroma run` from the installed chromadb, on a free port."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.skip("the chroma command (chromadb) is not installed")
    tmp = tmp_path_factory.mktemp("chroma")
    port = free_port()
    log = open(tmp / "log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(chroma), "run", "--path", str(tmp / "data"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, (tmp / "log").read_text()[-2000:]
        try:
            return httpx.get(f"{url}/api/v2/heartbeat", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, "the Chroma server to start")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def stream_request(url: str, key: str, content: str) -> tuple[str | None, dict | None]:
    """A streamed request: (run id once known, the final summary) - the summary is None if the replica
    died first."""
    run_id = None
    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", headers=auth(key), timeout=300, json={
                "model": "scripted/proc", "stream": True, "messages": [{"role": "user", "content": content}]}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    run_id = run_id or chunk.get("id", "").removeprefix("chatcmpl-") or None
                    if chunk.get("choices") and chunk["choices"][0].get("finish_reason"):
                        return run_id, chunk["seasoned"]
                    if "error" in chunk:
                        return run_id, chunk
    except httpx.TransportError:
        pass
    return run_id, None


def test_replicas_share_runs_memory_and_limits(pg_url, chroma_url, tmp_path):  # noqa: F811
    env = {"SEASONED_CHROMA_URL": chroma_url, "SEASONED_API_KEYS": f"{KEY1}={NAMESPACE},{KEY2}={NAMESPACE}"}
    bank = MemoryBank.open(pg_url, namespace=NAMESPACE, chroma_url=chroma_url)
    item = bank.add(MemoryItem(kind="strategy", title="Adding", content="Add the tens, then the ones.")).item
    bank.close()
    delay = tmp_path / "delay"
    delay.write_text("0.5")

    def replica(name: str) -> ServerProcess:
        (tmp_path / name).mkdir()
        return ServerProcess(tmp_path / name, pg_url, "--memory", "--memory-channel", "notes",
                             "--max-concurrent-per-key", "4", delay_file=delay, env=env)

    a, b = replica("a"), replica("b")
    a.ready(), b.ready()
    restarted = None
    try:
        for server in (a, b):  # a replica's first request loads the embedder: not what is measured here
            assert stream_request(server.url, KEY2, "Warm up: what is 40 + 2?")[1]["answer"] == "42"
        # --- load, round robin over both replicas -------------------------------------------------------
        def one(i: int) -> tuple[str, dict]:
            key = KEY1 if (i // 2) % 2 else KEY2  # 3 clients per key: under the limit of 4 (a slot is freed
            # just after its reply, so a client sending at once may meet its own last slot)
            return stream_request((a, b)[i % 2].url, key, f"Request {i}: what is 40 + 2?")

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(one, range(REQUESTS)))
        assert all(summary and summary["answer"] == "42" for _, summary in answers), answers
        assert all(item.id in summary["memory_ids"] for _, summary in answers)

        # --- runs in flight on replica a, a killed (kill -9), the runs resumed on replica b ---------------
        delay.write_text("60")
        with ThreadPoolExecutor(2) as pool:
            cut = [pool.submit(stream_request, a.url, KEY1, f"Cut off {i}: what is 40 + 2?") for i in range(2)]
            with RunStore.open(pg_url) as store:
                wait_for(lambda: len(store.list_runs(limit=100, namespace=NAMESPACE, status="running")) == 2,
                         "two runs in flight on replica a")
            a.kill()
            cut_ids = [future.result()[0] for future in cut]
        delay.write_text("0.5")
        for run_id in cut_ids:
            reply = httpx.post(f"{b.url}/v1/runs/{run_id}/resume", headers=auth(KEY1), timeout=300)
            assert reply.status_code == 200, reply.text
            answers.append((run_id, reply.json()["seasoned"]))
            assert answers[-1][1]["answer"] == "42"
        run_ids = {run_id for run_id, _ in answers}
        with RunStore.open(pg_url) as store:
            runs = store.list_runs(limit=1000, namespace=NAMESPACE)
            assert run_ids <= {r.id for r in runs} and len(run_ids) == REQUESTS + 2
            assert len(runs) == REQUESTS + 4  # no run lost, none extra (the two warm-ups)
            assert {r.status for r in runs} == {"completed"}
            assert all(store.get_run(run_id).run.resumes == 1 for run_id in cut_ids)

        # --- memory writes from both replicas at once: none lost ------------------------------------------
        restarted = replica("a2")
        restarted.ready()
        stream_request(restarted.url, KEY2, "Warm up again: what is 40 + 2?")
        targets = itertools.cycle((restarted, b))
        with ThreadPoolExecutor(CLIENTS) as pool:
            credited = list(pool.map(lambda run_id, target: httpx.post(
                f"{target.url}/v1/runs/{run_id}/feedback", headers=auth(KEY1), json={"success": True},
                timeout=120).status_code, sorted(run_ids), [next(targets) for _ in run_ids]))
        assert credited == [200] * len(run_ids)
        bank = MemoryBank.open(pg_url, namespace=NAMESPACE, chroma_url=chroma_url)
        try:
            assert bank.get(item.id).times_succeeded == len(run_ids)
            assert bank.retrieve("add the tens", k=1)[0].item.id == item.id  # the Chroma server has it
        finally:
            bank.close()

        # --- the per-key limit holds across replicas --------------------------------------------------
        delay.write_text("3")
        with ThreadPoolExecutor(4) as pool:
            slow = [pool.submit(stream_request, target.url, KEY1, f"Slow {i}: 40 + 2?")
                    for i, target in enumerate((restarted, b, restarted, b))]
            with RunStore.open(pg_url) as store:
                wait_for(lambda: len(store.list_runs(limit=100, namespace=NAMESPACE, status="running")) == 4,
                         "four runs of key 1 in flight, two on each replica")
            for target in (b, restarted):
                over = httpx.post(f"{target.url}/v1/chat/completions", headers=auth(KEY1), timeout=60, json={
                    "model": "scripted/proc", "messages": [{"role": "user", "content": "One too many?"}]})
                assert over.status_code == 429 and over.json()["error"]["code"] == "concurrency_limit"
            other = httpx.post(f"{b.url}/v1/chat/completions", headers=auth(KEY2), timeout=60, json={
                "model": "scripted/proc", "messages": [{"role": "user", "content": "What is 40 + 2?"}]})
            assert other.status_code == 200
            assert all(future.result()[1]["answer"] == "42" for future in slow)
    finally:
        for server in (a, b, restarted):
            if server is not None:
                server.stop()
