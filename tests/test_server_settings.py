"""Server settings, keys, the bind rule, the model field grammar and the loopback (no keys) mode."""

import json

import httpx
import pytest
from seasoned.errors import ApiError
from seasoned.server import ServerSettings, create_app, serve
from seasoned.server.schemas import ChatMessage, parse_model_field, strategy_config, task_from_messages
from seasoned.server.settings import (
    ServerConfigError,
    check_bind,
    gather_keys,
    is_loopback,
    load_keys_file,
    parse_keys,
)


def test_keys_from_the_environment_and_files(tmp_path):
    assert parse_keys("key-one-123=alpha, key-two-456=beta") == {"key-one-123": "alpha", "key-two-456": "beta"}
    with pytest.raises(ServerConfigError, match="entry 2 should be key=namespace"):
        parse_keys("key-one-123=alpha,lonely-key-1")
    with pytest.raises(ServerConfigError, match="at least 8 characters"):
        parse_keys("short=alpha")
    lines = tmp_path / "keys.txt"
    lines.write_text("# team keys\nkey-one-123=alpha\n\nkey-two-456 = beta\n")
    assert load_keys_file(lines) == {"key-one-123": "alpha", "key-two-456": "beta"}
    as_json = tmp_path / "keys.json"
    as_json.write_text(json.dumps([{"key": "key-three-789", "namespace": "gamma"}]))
    assert load_keys_file(as_json) == {"key-three-789": "gamma"}
    bad = tmp_path / "bad.txt"
    bad.write_text("key-one-123=alpha\nno separator here\n")
    with pytest.raises(ServerConfigError, match="line 2"):
        load_keys_file(bad)
    with pytest.raises(ServerConfigError, match="cannot read"):
        load_keys_file(tmp_path / "missing.txt")
    env = {"SEASONED_API_KEYS": "key-one-123=alpha"}
    assert gather_keys(as_json, env) == {"key-one-123": "alpha", "key-three-789": "gamma"}
    clash = tmp_path / "clash.txt"
    clash.write_text("key-one-123=beta\n")
    with pytest.raises(ServerConfigError, match="two namespaces"):
        gather_keys(clash, env)


def test_only_loopback_may_run_without_keys():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_bind("127.0.0.1", {})
    check_bind("0.0.0.0", {"key-one-123": "alpha"})
    with pytest.raises(ServerConfigError, match="requires API keys"):
        check_bind("0.0.0.0", {})


def test_serve_refuses_a_public_host_without_keys_with_exit_code_2(monkeypatch, capsys):
    monkeypatch.delenv("SEASONED_API_KEYS", raising=False)
    with pytest.raises(SystemExit) as caught:
        serve("0.0.0.0", 0)
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "requires API keys" in err[0] and "SEASONED_API_KEYS" in err[0]


def test_model_field_grammar():
    assert parse_model_field("adaptive:local/smollm2-135m") == ("adaptive", "local/smollm2-135m")
    assert parse_model_field("best_of_n-8:openai/gpt-4o-mini|local/smollm2-135m") == (
        "best_of_n-8", "openai/gpt-4o-mini|local/smollm2-135m")
    assert parse_model_field("ollama/llama3:8b") == (None, "ollama/llama3:8b")
    assert parse_model_field("revise-2:ollama/llama3:8b") == ("revise-2", "ollama/llama3:8b")
    assert parse_model_field("self_consistency-5") == ("self_consistency-5", None)
    assert parse_model_field("local/smollm2-135m") == (None, "local/smollm2-135m")
    with pytest.raises(ApiError, match="nothing after"):
        parse_model_field("single:")
    config = strategy_config("best_of_n-4", {"judge": False}, max_tokens=64, temperature=0.2, seed=5)
    assert (config.name, config.n, config.judge, config.max_tokens, config.temperature, config.seed) == (
        "best_of_n", 4, False, 64, 0.2, 5)
    with pytest.raises(ApiError) as caught:
        strategy_config("single", {"stop_confidence": 0}, max_tokens=None, temperature=None, seed=None)
    assert caught.value.param == "seasoned.strategy.stop_confidence"


def test_messages_become_one_task():
    def msgs(*pairs):
        return [ChatMessage(role=r, content=c) for r, c in pairs]

    assert task_from_messages(msgs(("user", "What is 2+2?"))) == "What is 2+2?"
    task = task_from_messages(msgs(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"),
                                   ("user", "What is 2+2?")))
    assert task == "Be brief.\n\nConversation so far:\nuser: Hi\nassistant: Hello\n\nNow answer:\nWhat is 2+2?"
    with pytest.raises(ApiError) as caught:
        task_from_messages(msgs(("user", "   ")))
    assert caught.value.param == "messages[0].content"


def test_settings_are_validated():
    with pytest.raises(ValueError, match="max_tokenz"):
        ServerSettings(model="scripted/x", budget={"max_tokenz": 3})
    assert ServerSettings(model="a/b", models=["c/d", "*"]).served_models == ["a/b", "c/d"]


async def test_on_loopback_without_keys_the_namespace_is_the_requests(tmp_path):
    from seasoned.models import scripted

    scripted.register("srv-open", fn=lambda messages, params: "Answer: 7")
    settings = ServerSettings(model="scripted/srv-open", memory=False, checkpoint=False,
                              db_url=f"sqlite:///{tmp_path}/open.db", max_budget={"max_tokens": 5000})
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as web:
            assert (await web.get("/v1/models")).status_code == 200
            body = {"model": "single", "messages": [{"role": "user", "content": "3 + 4?"}],
                    "seasoned": {"namespace": "team-a"}}
            reply = await web.post("/v1/chat/completions", json=body)
            assert reply.status_code == 200, reply.text
            run_id = reply.json()["seasoned"]["run_id"]
            assert reply.json()["seasoned"]["namespace"] == "team-a"
            assert (await web.get(f"/v1/runs/{run_id}", params={"namespace": "team-a"})).status_code == 200
            assert (await web.get(f"/v1/runs/{run_id}")).status_code == 200  # no namespace named: found by id
            assert (await web.get(f"/v1/runs/{run_id}", params={"namespace": "default"})).status_code == 404
            assert (await web.get("/v1/memory/search", params={"q": "x"})).status_code == 404  # memory off
            too_much = {**body, "seasoned": {"budget": {"max_tokens": 9000}}}
            refused = await web.post("/v1/chat/completions", json=too_much)
            assert refused.status_code == 402 and refused.json()["error"]["param"] == "seasoned.budget.max_tokens"
    finally:
        await app.state.service.aclose()
