"""`seasoned serve` as a drop-in for OpenAI clients (issue 23 point 5): a bare model name is one plain call,
an unknown model is 404 ``model_not_found``, ``stop`` and ``response_format`` are honoured (or refused with
a 400 naming the field), and Ctrl-C stops a server with requests in flight at once, each client getting a
clean error naming its run, which stays resumable."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import openai
import pytest
from openai import OpenAI
from seasoned.models import scripted
from seasoned.server import BackgroundServer, ServerSettings, create_app
from serve_scripted import ServerProcess, wait_for

MODEL = "scripted/dropin"


def reply(messages, params):
    text = messages[-1]["content"]
    if "json" in text.lower():
        return '{"answer": 42}' if "object" in text else "Sure! The answer is 42."
    return "Hello there. STOP This part must not be sent.\nAnswer: hello"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dropin")
    scripted.register("dropin", fn=reply)
    settings = ServerSettings(model=MODEL, db_url=f"sqlite:///{tmp}/s.db", memory=False)  # strategy: default
    app = create_app(settings)
    with BackgroundServer(app) as url:
        yield {"url": url, "service": app.state.service,
               "client": OpenAI(base_url=f"{url}/v1", api_key="unused-on-loopback", max_retries=0)}


def solver_params() -> list[dict]:
    return [p for m, p in scripted.get("dropin").seen]


def test_a_bare_model_name_is_one_plain_call(server):
    reply_ = server["client"].chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}])
    run = server["service"].store.get_run(reply_.model_extra["seasoned"]["run_id"])
    assert run.run.strategy == "single" and run.totals.calls == 1
    assert reply_.usage.total_tokens == run.totals.total_tokens


def test_an_unknown_model_is_404_model_not_found(server):
    with pytest.raises(openai.NotFoundError) as caught:
        server["client"].chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found" and caught.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        server["client"].models.retrieve("gpt-4o")
    misspelled = httpx.post(f"{server['url']}/v1/chat/completions",
                            json={"model": "adaptiv", "messages": [{"role": "user", "content": "hi"}]})
    assert misspelled.status_code == 400 and misspelled.json()["error"]["code"] == "unknown_strategy"


def test_stop_is_honoured(server):
    reply_ = server["client"].chat.completions.create(model=MODEL, stop=["STOP"],
                                                      messages=[{"role": "user", "content": "Say hello."}])
    assert reply_.choices[0].message.content == "Hello there. "
    assert reply_.choices[0].finish_reason == "stop"
    assert solver_params()[-1]["stop"] == ["STOP"]  # the model was asked to stop there
    streamed = server["client"].chat.completions.create(model=f"best_of_n-2:{MODEL}", stop="STOP", stream=True,
                                                        messages=[{"role": "user", "content": "Say hello."}])
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "Hello there. "


def test_response_format_json_object_and_schema_are_honoured(server):
    client = server["client"]
    asked = {"role": "user", "content": "Reply with a JSON object holding the answer to 40 + 2."}
    ok = client.chat.completions.create(model=MODEL, messages=[asked], response_format={"type": "json_object"})
    assert json.loads(ok.choices[0].message.content) == {"answer": 42}
    assert solver_params()[-1]["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    fine = client.chat.completions.create(model=MODEL, messages=[asked], response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
    assert json.loads(fine.choices[0].message.content)["answer"] == 42
    wrong = {"type": "object", "required": ["result"]}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=[asked], response_format={
            "type": "json_schema", "json_schema": {"name": "result", "schema": wrong}})
    assert caught.value.status_code == 502 and caught.value.code == "invalid_response_format"
    prose = {"role": "user", "content": "What is 40 + 2? json please"}
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=[prose], response_format={"type": "json_object"})
    assert "not JSON" in caught.value.message


def test_bad_stop_and_response_format_are_400_naming_the_field(server):
    for body, param in (({"stop": [""]}, "stop"), ({"response_format": {"type": "yaml"}}, "response_format.type"),
                        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema")):
        response = httpx.post(f"{server['url']}/v1/chat/completions",
                              json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body})
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


def _in_flight_requests(url: str, n: int) -> tuple[list, list[threading.Thread]]:
    """``n`` requests (the last one streamed) left waiting on a model that does not answer."""
    outcomes: list = [None] * n

    def plain(i: int) -> None:
        response = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "scripted/proc", "messages": [{"role": "user", "content": f"Question {i}: 40 + 2?"}]})
        outcomes[i] = (response.status_code, response.json())

    def streamed(i: int) -> None:
        with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=120, json={
                "model": "scripted/proc", "stream": True,
                "messages": [{"role": "user", "content": f"Question {i}: 40 + 2?"}]}) as response:
            lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        outcomes[i] = (response.status_code, [json.loads(x) for x in lines if x != "[DONE]"], lines[-1])

    threads = [threading.Thread(target=streamed if i == n - 1 else plain, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    return outcomes, threads


def test_ctrl_c_stops_in_flight_requests_with_a_clean_error(tmp_path):
    from seasoned.runs import RunStore

    db = f"sqlite:///{tmp_path}/s.db"
    delay = tmp_path / "delay"
    delay.write_text("600")
    server = ServerProcess(tmp_path, db, delay_file=delay).ready()
    try:
        outcomes, threads = _in_flight_requests(server.url, 3)
        with RunStore.open(db) as store:
            wait_for(lambda: len([r for r in store.list_runs(limit=10) if r.status == "running"]) == 3,
                     "three runs in flight")
        started = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        code = server.process.wait(60)
        took = time.monotonic() - started
        for thread in threads:
            thread.join(60)
    finally:
        server.stop()
    print(f"Ctrl-C with 3 requests in flight: exited in {took:.2f} s")
    assert code == 0
    for status, body in (outcome[:2] for outcome in outcomes[:2]):
        assert status == 503 and body["error"]["code"] == "server_shutting_down"
        assert body["error"]["run_id"] in body["error"]["message"]
    status, chunks, last = outcomes[2]
    assert status == 200 and chunks[-1]["error"]["code"] == "server_shutting_down" and last == "[DONE]"
    with RunStore.open(db) as store:
        assert {r.status for r in store.list_runs(limit=10)} == {"interrupted"}  # resumable


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    delay = tmp_path / "delay"
    delay.write_text("600")
    server = ServerProcess(tmp_path, f"sqlite:///{tmp_path}/s.db", delay_file=delay).ready()
    try:
        _, threads = _in_flight_requests(server.url, 1)
        time.sleep(1)
        server.process.send_signal(signal.SIGINT)
        time.sleep(0.3)  # two signals sent together may arrive as one
        server.process.send_signal(signal.SIGINT)
        code = server.process.wait(60)
    finally:
        server.stop()
    for thread in threads:
        thread.join(60)
    assert code == 130
