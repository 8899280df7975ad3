"""The HTTP service answers bad bodies with 400 and runs nothing; streams stay valid JSON; a client that
goes away cancels its run; finished runs leave the ledger (issue 14). A real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from seasoned.agents import verifier
from seasoned.models import scripted, untrusted
from seasoned.server import BackgroundServer, ServerSettings, create_app
from seasoned.server.responses import dumps

MODEL = "scripted/sec-solver"
SLOW = "scripted/sec-slow"
NAN_JUDGE = "scripted/sec-nan-judge"


def solver_reply(messages, params):
    if messages[0]["content"] == verifier.SYSTEM:
        return '{"correct": true, "score": "nan", "reason": "NaN confidence"}'
    return "40 plus 2 makes 42.\nAnswer: 42"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sec-server")
    solver = scripted.register("sec-solver", fn=solver_reply)
    slow = scripted.register("sec-slow", fn=solver_reply, delay=5.0)
    settings = ServerSettings(model=MODEL, models=[SLOW], db_url=f"sqlite:///{tmp}/seasoned.db", memory=False,
                              max_body_bytes=2_000_000)
    app = create_app(settings)
    with BackgroundServer(app) as url:
        with httpx.Client(base_url=url, timeout=120) as client:  # warm up litellm and the graphs once
            assert client.post("/v1/chat/completions", json=ask(model=f"single:{MODEL}")).status_code == 200
        yield {"url": url, "service": app.state.service, "models": (solver, slow)}


def http(server) -> httpx.Client:
    return httpx.Client(base_url=server["url"], timeout=60)


def ask(**extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "What is 40 + 2?"}], **extra}


def state(server) -> tuple:
    """What a rejected request must not change: runs, ledger records, model calls."""
    service = server["service"]
    return (len(service.store.list_runs(limit=10_000)), len(service.ledger.calls()),
            tuple(model.calls for model in server["models"]))


BAD_BODIES = {
    "lone surrogate": json.dumps(ask(messages=[{"role": "user", "content": "\ud800 what is 1 + 1?"}])),
    "lone surrogate in a key": '{"model": "' + MODEL + '", "messages": [{"role": "user", "content": "hi"}], "\\udfff": 1}',
    "nested 100k deep": '{"model": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "nested 100k, unclosed": '{"model": "x", "metadata": ' + "{\"a\": " * 100_000,
    "seed 2**64": json.dumps(ask(seed=2**64)),
    "seed below int64": json.dumps(ask(seed=-2**63 - 1)),
    "seed with 5000 digits": json.dumps(ask()).replace("{", '{"seed": ' + "9" * 5000 + ", ", 1),
    "max_usd Infinity": json.dumps(ask(seasoned={"budget": {"max_usd": float("inf")}})),
    "max_usd NaN": json.dumps(ask(seasoned={"budget": {"max_usd": float("nan")}})),
    "max_seconds Infinity": json.dumps(ask(seasoned={"budget": {"max_seconds": float("inf")}})),
    "max_seconds 1e999": json.dumps(ask(seasoned={"budget": {"max_seconds": 1.5}})).replace("1.5", "1e999"),
    "max_tokens 2**70": json.dumps(ask(seasoned={"budget": {"max_tokens": 2**70}})),
    "temperature NaN": json.dumps(ask(temperature=float("nan"))),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_malformed_bodies_are_400_and_run_nothing(server, name):
    before = state(server)
    with http(server) as client:
        response = client.post("/v1/chat/completions", content=BAD_BODIES[name].encode(),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert state(server) == before


def test_the_error_names_the_field(server):
    with http(server) as client:
        seed = client.post("/v1/chat/completions", content=BAD_BODIES["seed 2**64"].encode()).json()["error"]
        usd = client.post("/v1/chat/completions", content=BAD_BODIES["max_usd Infinity"].encode()).json()["error"]
        text = client.post("/v1/chat/completions", content=BAD_BODIES["lone surrogate"].encode()).json()["error"]
    assert seed["param"] == "seed" and "out of range" in seed["message"]
    assert "Infinity" in usd["message"]
    assert text["param"] == "messages[0].content" and "surrogate" in text["message"]


@pytest.mark.parametrize("seed", [2**63 - 1, -2**63, 0])
def test_int64_seeds_at_the_edges_work(server, seed):
    with http(server) as client:
        response = client.post("/v1/chat/completions", json=ask(model=f"best_of_n-2:{MODEL}", seed=seed))
    assert response.status_code == 200, response.text
    assert response.json()["seasoned"]["answer"] == "42"


def strict(line: str) -> dict:
    """Standard JSON only: a bare NaN or Infinity fails here."""
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in the stream: {line[:200]}"))


def test_a_nan_judge_score_never_reaches_the_wire(server):
    body = ask(model=f"best_of_n-2:{MODEL}", stream=True, seasoned={"strategy": {"judge": True}})
    with http(server) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [strict(line) for line in lines[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    with http(server) as client:
        plain = client.post("/v1/chat/completions", json={**body, "stream": False})
        assert plain.status_code == 200
        strict(plain.text)
        strict(client.get(f"/v1/runs/{plain.json()['seasoned']['run_id']}").text)


def test_dumps_replaces_non_finite_numbers():
    text = dumps({"score": float("nan"), "nested": [{"x": float("-inf")}, 1.5], "ok": "NaN"})
    assert strict(text) == {"score": None, "nested": [{"x": None}, 1.5], "ok": "NaN"}
    assert untrusted.finite_or_none((float("inf"), 2)) == [None, 2]


def wait_for(predicate, what: str, seconds: float = 60.0):
    """Poll a condition the server reaches asynchronously (a deadline against hangs, not a speed test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_client_that_disconnects_cancels_its_run_with_spend(server):
    service = server["service"]
    body = ask(model=f"best_of_n-2:{SLOW}", stream=True)
    gateway = service.gateway_for(SLOW)
    with http(server) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()  # kept: dropping the iterator would close the connection already
        first = next(line for line in lines if line.startswith("data: "))
        run_id = strict(first[6:])["id"].removeprefix("chatcmpl-")
        wait_for(lambda: gateway.in_flight(run_id) >= 1, "a sample to be in flight")
        time.sleep(0.5)  # from in flight to sent takes microseconds; the model answers after 5 s
        assert service.store.get_run(run_id).run.status == "running"
    # the connection is closed here, with the sample still waiting on the slow model
    # (the agent marks a cancelled run "interrupted" at once; the service then records it "cancelled" with
    # its final spend once the cancelled calls have settled)
    run = wait_for(lambda: (r := service.store.get_run(run_id).run).status not in ("running", "interrupted") and r,
                   "the run to end")
    assert run.status == "cancelled" and "disconnected" in (run.error or "")
    trace = wait_for(lambda: (t := service.store.get_run(run_id)).calls and t, "the cancelled calls")
    assert all(call.error == "cancelled" for call in trace.calls), [(c.error, c.role, c.total_tokens, c.latency_s) for c in trace.calls]
    assert run.spend["calls"] == len(trace.calls) >= 1
    assert run.spend["tokens"] == sum(call.total_tokens for call in trace.calls) > 0  # prompts were sent
    assert service.ledger.calls(run_id=run_id) == []  # forgotten once stored


def test_finished_runs_leave_the_ledger(server):
    service = server["service"]
    with http(server) as client:
        for stream in (False, True, False):
            with client.stream("POST", "/v1/chat/completions", json=ask(stream=stream)) as response:
                assert response.status_code == 200
                response.read()
    for run in service.store.list_runs(limit=3):
        assert service.ledger.calls(run_id=run.id) == []
        assert service.store.get_run(run.id).calls  # still in the run store
    assert all(record.run_id is None for record in service.ledger.calls())
