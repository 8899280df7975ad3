"""The HTTP service as a new user meets it (issue 15): a loopback server without keys, scripted models.

Runs are found by id without ``?namespace=``; a misspelled strategy is named as one; stream chunks share
one id; a reply cut at ``max_tokens`` says ``length``; ``/health``; ``max_tokens`` caps every sample;
the default strategy of a bare model name is a setting.
"""

import json

import httpx
import pytest
from seasoned.agents import verifier
from seasoned.models import scripted
from seasoned.server import BackgroundServer, ServerSettings, build_settings, create_app
from seasoned.server.settings import ServerConfigError

MODEL = "scripted/path-solver"
ESSAY = " ".join(f"word{i}" for i in range(60)) + "\nAnswer: 42"


def reply(messages, params):
    if messages[0]["content"] == verifier.SYSTEM:
        return '{"correct": true, "score": 0.9, "reason": "fine"}'
    if "essay" in messages[-1]["content"]:
        return ESSAY
    return "40 plus 2 makes 42.\nAnswer: 42"


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("userpath")
    scripted.register("path-solver", fn=reply)
    settings = ServerSettings(model=MODEL, strategy="single", db_url=f"sqlite:///{tmp}/s.db",
                              chroma_path=str(tmp / "chroma"), memory_channel="notes")
    app = create_app(settings)
    with BackgroundServer(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def ask(content="What is 40 + 2?", model=MODEL, **extra):
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def test_runs_are_found_by_id_or_prefix_without_a_namespace_parameter(web):
    body = web.post("/v1/chat/completions", json=ask(seasoned={"namespace": "math"})).json()
    run_id = body["seasoned"]["run_id"]
    assert body["seasoned"]["namespace"] == "math"
    assert web.get(f"/v1/runs/{run_id}").json()["run"]["namespace"] == "math"
    assert web.get(f"/v1/runs/{run_id[:10]}").json()["run"]["id"] == run_id  # a unique prefix
    feedback = web.post(f"/v1/runs/{run_id[:10]}/feedback", json={"success": True})
    assert feedback.status_code == 200, feedback.text
    # naming the namespace still works; naming another one does not find it
    assert web.get(f"/v1/runs/{run_id}", params={"namespace": "math"}).status_code == 200
    other = web.get(f"/v1/runs/{run_id}", params={"namespace": "other"})
    assert other.status_code == 404 and "other" in other.json()["error"]["message"]
    assert web.get("/v1/runs/no-such-run").status_code == 404


@pytest.mark.parametrize("model", ["adaptiv", f"bestofn-4:{MODEL}", "self-consistency:" + MODEL])
def test_a_misspelled_strategy_is_named_as_an_unknown_strategy(web, model):
    response = web.post("/v1/chat/completions", json=ask(model=model))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_strategy" and "not served" not in error["message"]
    assert "unknown strategy" in error["message"] and "best_of_n" in error["message"]


def test_an_unserved_model_with_a_provider_is_still_a_model_error(web):
    error = web.post("/v1/chat/completions", json=ask(model="openai/gpt-nothing")).json()["error"]
    assert error["code"] == "model_not_found"


def test_stream_chunks_share_one_id_and_a_cut_reply_ends_with_length(web):
    with web.stream("POST", "/v1/chat/completions", json=ask("Write an essay", stream=True, max_tokens=12)) as r:
        lines = [line for line in r.iter_lines() if line and line != "data: [DONE]"]
    chunks = [json.loads(line[len("data: "):]) for line in lines]
    run_id = chunks[-1]["seasoned"]["run_id"]
    assert {c["id"] for c in chunks} == {f"chatcmpl-{run_id}"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    plain = web.post("/v1/chat/completions", json=ask("Write an essay", max_tokens=12)).json()
    assert plain["choices"][0]["finish_reason"] == "length"
    whole = web.post("/v1/chat/completions", json=ask("Write an essay", max_tokens=400)).json()
    assert whole["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_caps_every_sample(web):
    body = web.post("/v1/chat/completions",
                    json=ask("Write an essay", model=f"best_of_n-3:{MODEL}", max_tokens=10)).json()
    trace = web.get(f"/v1/runs/{body['seasoned']['run_id']}").json()
    solver_calls = [c for c in trace["calls"] if c["role"] == "solver"]
    assert len(solver_calls) == 3
    assert all(0 < c["completion_tokens"] <= 10 for c in solver_calls)


def test_health_reports_the_model_the_strategy_and_memory(web):
    body = web.get("/health").json()
    assert body["status"] == "ok" and body["model"] == MODEL
    assert body["default_strategy"] == "single"
    assert body["memory"] == {"enabled": True, "status": "ok"}


def test_the_default_strategy_is_a_checked_setting(web):
    body = web.post("/v1/chat/completions", json=ask()).json()
    assert body["seasoned"]["strategy"] == "single"  # a bare model name uses the server's setting
    with pytest.raises(ServerConfigError, match="strategy"):
        build_settings("127.0.0.1", model=MODEL, strategy="adaptiv")


def test_serve_takes_a_strategy_option(monkeypatch):
    from seasoned import cli
    from typer.testing import CliRunner

    seen = {}
    monkeypatch.setattr("seasoned.server.runner.serve", lambda *a, **kw: seen.update(kw))
    result = CliRunner().invoke(cli.app, ["serve", "--strategy", "best_of_n-2"])
    assert result.exit_code == 0, result.output
    assert seen["strategy"] == "best_of_n-2"
