"""`seasoned serve` through the official openai client against a real uvicorn server on 127.0.0.1.

The models are scripted (deterministic); one module-scoped server with two API keys (two namespaces).
"""

import asyncio
import json

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from seasoned.agents import verifier
from seasoned.memory import MemoryItem
from seasoned.models import scripted
from seasoned.server import BackgroundServer, ServerSettings, create_app

ALPHA, BETA = "alpha-key-0123456789", "beta-key-0123456789"
SOLVER = "scripted/srv-solver"
SLOW = "scripted/srv-slow"


def reply(messages, params):
    if messages[0]["content"] == verifier.SYSTEM:
        return '{"correct": true, "score": 0.9, "reason": "checks out"}'
    return "40 plus 2 makes 42.\nAnswer: 42"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    scripted.register("srv-solver", fn=reply)
    scripted.register("srv-slow", fn=reply, delay=1.0)
    settings = ServerSettings(model=SOLVER, models=[SLOW], db_url=f"sqlite:///{tmp}/seasoned.db",
                              chroma_path=str(tmp / "chroma"), keys={ALPHA: "alpha", BETA: "beta"},
                              max_concurrent_per_key=3, max_body_bytes=64_000,
                              memory_channel="notes")  # the items below always reach the prompt
    app = create_app(settings)
    service = app.state.service
    item = service.bank.add(MemoryItem(kind="strategy", title="Adding numbers",
                                       content="Add the tens, then the ones: 40 + 2 = 42."),
                            namespace="alpha", actor="human").item
    with BackgroundServer(app) as url:
        yield {"url": url, "service": service, "alpha_item": item.id}


def client(server, key=ALPHA, **kwargs):
    return OpenAI(base_url=server["url"] + "/v1", api_key=key, max_retries=0, **kwargs)


def http(server, key=ALPHA):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server["url"], headers=headers, timeout=30)


def ask(model=SOLVER, content="What is 40 + 2?", **extra):
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def written(service):
    """What a rejected request must not change: runs, ledger records, memory item statistics."""
    runs = len(service.store.list_runs(limit=10_000))
    items = [(i.id, i.times_retrieved, i.times_succeeded, i.times_failed)
             for ns in ("alpha", "beta") for i in service.bank.list(namespace=ns)]
    return runs, len(service.ledger.calls()), items


def test_models_lists_served_models_and_the_grammar(server):
    ids = [m.id for m in client(server).models.list().data]
    assert ids[0] == SOLVER
    assert f"best_of_n-8:{SOLVER}" in ids and f"adaptive:{SLOW}" in ids
    body = http(server).get("/v1/models").json()
    assert "[STRATEGY:]MODEL" in body["seasoned"]["grammar"]
    assert body["seasoned"]["default_model"] == SOLVER
    assert client(server).models.retrieve(f"single:{SOLVER}").id == f"single:{SOLVER}"


def test_plain_completion_usage_equals_the_ledger(server):
    service = server["service"]
    reply_ = client(server).chat.completions.create(
        model=f"best_of_n-3:{SOLVER}", messages=[{"role": "user", "content": "What is 40 + 2?"}],
        max_tokens=40, temperature=0.5, seed=3, extra_body={"seasoned": {"memory": False}})
    assert reply_.choices[0].message.content.endswith("Answer: 42")
    assert reply_.choices[0].finish_reason == "stop"
    extra = reply_.model_extra["seasoned"]
    run_id = extra["run_id"]
    assert extra["answer"] == "42" and extra["verified"] and extra["strategy"] == "best_of_n-3"
    assert service.ledger.calls(run_id=run_id) == []  # a finished run leaves the in-memory ledger...
    totals = service.store.get_run(run_id).totals  # ...its calls are in the run store
    assert totals.calls == 3  # three samples; they agree, so there is nothing for the judge to pick
    assert reply_.usage.prompt_tokens == totals.prompt_tokens
    assert reply_.usage.completion_tokens == totals.completion_tokens
    assert reply_.usage.total_tokens == totals.total_tokens == extra["spend"]["tokens"]
    trace = http(server).get(f"/v1/runs/{run_id}").json()
    assert trace["run"]["namespace"] == "alpha" and trace["totals"]["calls"] == 3
    assert trace["run"]["strategy"] == "best_of_n-3"
    # the standard fields became the strategy's per-sample settings
    sample_params = [p for m, p in scripted.get("srv-solver").seen if m[0]["content"] != verifier.SYSTEM]
    assert sample_params[-1]["max_tokens"] == 40 and sample_params[-1]["temperature"] == 0.5


def test_streamed_completion_has_progress_answer_and_usage(server):
    stream = client(server).chat.completions.create(
        model=f"self_consistency-3:{SOLVER}", messages=[{"role": "user", "content": "What is 40 + 2?"}],
        stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("Answer: 42")
    progress = [c.model_extra["seasoned"] for c in chunks[:-1] if (c.model_extra or {}).get("seasoned")]
    kinds = {p["event"] for p in progress}
    assert {"candidate", "decision", "node"} <= kinds
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    run_id = last.model_extra["seasoned"]["run_id"]
    assert last.usage.total_tokens == server["service"].store.get_run(run_id).totals.total_tokens > 0
    assert sum(p["event"] == "candidate" for p in progress) == 3


def test_raw_stream_ends_with_done(server):
    with http(server).stream("POST", "/v1/chat/completions", json=ask(stream=True)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0][len("data: "):])
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"]["role"] == "assistant"


def test_feedback_changes_the_utility_of_the_items_the_run_used(server):
    item_id = server["alpha_item"]
    web = http(server)
    before = web.get(f"/v1/memory/items/{item_id}").json()
    reply_ = client(server).chat.completions.create(**ask(f"single:{SOLVER}"))
    extra = reply_.model_extra["seasoned"]
    assert item_id in extra["memory_ids"] and extra["namespace"] == "alpha", extra
    response = web.post(f"/v1/runs/{extra['run_id']}/feedback", json={"success": True, "comment": "right"})
    assert response.status_code == 200, response.text
    assert item_id in response.json()["memory_items_credited"]
    after = web.get(f"/v1/memory/items/{item_id}").json()
    assert after["times_succeeded"] == before["times_succeeded"] + 1
    assert after["utility"] > before["utility"]
    assert web.get(f"/v1/runs/{extra['run_id']}").json()["feedback"][-1]["success"] is True
    bad = web.post(f"/v1/runs/{extra['run_id']}/feedback", json={"success": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "success"


def test_a_key_is_required_and_checked_on_every_endpoint(server):
    paths = [("GET", "/v1/models"), ("GET", "/v1/memory/search?q=tens"), ("GET", "/v1/runs/x"),
             ("GET", f"/v1/memory/items/{server['alpha_item']}"), ("POST", "/v1/runs/x/feedback"),
             ("POST", "/v1/chat/completions")]
    for key in (None, "not-a-real-key-000"):
        web = http(server, key)
        for method, path in paths:
            response = web.request(method, path, json=ask())
            assert response.status_code == 401, (key, path, response.text)
            assert response.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        client(server, "wrong-key-0000000").chat.completions.create(**ask())


def test_a_key_never_sees_another_namespace(server):
    alpha, beta = http(server, ALPHA), http(server, BETA)
    item_id = server["alpha_item"]
    run_id = client(server).chat.completions.create(**ask(f"single:{SOLVER}")).model_extra["seasoned"]["run_id"]
    hits = alpha.get("/v1/memory/search", params={"q": "add the tens and the ones"}).json()["data"]
    assert item_id in [h["item"]["id"] for h in hits]
    assert beta.get("/v1/memory/search", params={"q": "add the tens and the ones"}).json()["data"] == []
    assert beta.get(f"/v1/memory/items/{item_id}").status_code == 404
    assert beta.get(f"/v1/runs/{run_id}").status_code == 404
    assert beta.post(f"/v1/runs/{run_id}/feedback", json={"success": False}).status_code == 404
    for response in (beta.get("/v1/memory/search", params={"q": "tens", "namespace": "alpha"}),
                     beta.get(f"/v1/memory/items/{item_id}", params={"namespace": "alpha"}),
                     beta.post("/v1/chat/completions", json=ask(seasoned={"namespace": "alpha"}))):
        assert response.status_code == 403, response.text
    # beta's own runs do not retrieve alpha's items, and are beta's
    extra = client(server, BETA).chat.completions.create(**ask(f"single:{SOLVER}")).model_extra["seasoned"]
    assert extra["memory_ids"] == [] and extra["namespace"] == "beta"
    assert alpha.get(f"/v1/runs/{extra['run_id']}").status_code == 404
    assert beta.get(f"/v1/memory/items/{item_id}").status_code == 404
    assert server["service"].bank.get(item_id, namespace="alpha").times_failed == 0


BAD_BODIES = [
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
    ({"model": SOLVER}, 400, "messages"),
    ({"model": SOLVER, "messages": []}, 400, "messages"),
    ({"model": SOLVER, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    ({"model": SOLVER, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]},
     400, "messages[1].role"),
    (ask(temperature=7), 400, "temperature"),
    (ask(n=2), 400, "n"),
    (ask(tools=[{"type": "function", "function": {"name": "f"}}]), 400, "tools"),
    (ask("nonsense-9:scripted/srv-solver"), 404, "model"),
    (ask("openai/gpt-4o-mini"), 404, "model"),
    (ask("gpt-4o"), 404, "model"),
    (ask("scripted/not-registered"), 404, "model"),
    (ask(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    (ask(response_format={"type": "xml"}), 400, "response_format.type"),
    (ask(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}), 400,
     "response_format.json_schema.schema"),
    (ask(logprobs=True), 400, "logprobs"),
    (ask(seasoned={"budget": {"max_tokens": "lots"}}), 400, "seasoned.budget.max_tokens"),
    (ask(seasoned={"budget": {"max_tokens": -1}}), 400, "seasoned.budget.max_tokens"),
    (ask(seasoned={"budget": {"max_tokenz": 10}}), 400, "seasoned.budget.max_tokenz"),
    (ask(seasoned={"strategy": {"n": 0}}), 400, "seasoned.strategy.n"),
    (ask(seasoned={"strategy": {"wave": 2}}), 400, "seasoned.strategy.wave"),
    (ask(seasoned={"strategy": {"judge_model": "openai/gpt-4o"}}), 400, "seasoned.strategy.judge_model"),
    (ask(seasoned={"budget": {"max_tokens": 5}}), 402, "seasoned.budget.max_tokens"),
    (ask(seasoned={"budget": {"max_calls": 0}}), 402, "seasoned.budget.max_calls"),
    (ask(content="x " * 40_000), 413, None),
]


def test_bad_bodies_are_rejected_with_the_field_named_and_nothing_written(server):
    service = server["service"]
    before = written(service)
    web = http(server)
    for body, status, param in BAD_BODIES:
        response = web.post("/v1/chat/completions", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["param"] == param and error["message"], error
        if param:
            assert param in error["message"]
    for raw in (b"{not json", b"[1, 2]"):
        response = web.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["param"] == "body"
    assert written(service) == before
    with pytest.raises(openai.BadRequestError, match="messages"):
        client(server).chat.completions.create(model=SOLVER, messages=[])
    with pytest.raises(openai.APIStatusError) as caught:
        client(server).chat.completions.create(**ask(), extra_body={"seasoned": {"budget": {"max_tokens": 3}}})
    assert caught.value.status_code == 402 and "cannot pay for even one call" in caught.value.message
    assert written(service) == before


async def test_per_key_concurrency_limit_answers_429(server):
    service = server["service"]
    fast = AsyncOpenAI(base_url=server["url"] + "/v1", api_key=ALPHA, max_retries=0)
    other = AsyncOpenAI(base_url=server["url"] + "/v1", api_key=BETA, max_retries=0)
    slow = [asyncio.create_task(fast.chat.completions.create(**ask(f"single:{SLOW}"))) for _ in range(3)]
    for _ in range(200):
        if service.gateway_for(SLOW).in_flight() or sum(1 for t in slow if t.done()):
            break
        await asyncio.sleep(0.02)
    runs_before = len(service.store.list_runs(limit=10_000))
    with pytest.raises(openai.RateLimitError, match="in flight"):
        await fast.chat.completions.create(**ask(f"single:{SLOW}"))
    assert len(service.store.list_runs(limit=10_000)) == runs_before
    # another key is not limited by alpha's requests
    assert (await other.chat.completions.create(**ask(f"single:{SOLVER}"))).choices[0].message.content
    replies = await asyncio.gather(*slow)
    assert all(r.choices[0].message.content for r in replies)
    assert (await fast.chat.completions.create(**ask(f"single:{SOLVER}"))).choices[0].message.content
