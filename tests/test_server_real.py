"""A completion through the server on the embedded real model (SmolLM2-135M via llama.cpp)."""

import pytest
from openai import OpenAI
from seasoned.server import BackgroundServer, ServerSettings, create_app

pytestmark = pytest.mark.real_model
MODEL = "local/smollm2-135m"


def test_completion_on_the_embedded_model(tmp_path):
    settings = ServerSettings(model=MODEL, memory=False, db_url=f"sqlite:///{tmp_path}/seasoned.db")
    app = create_app(settings)
    with BackgroundServer(app) as url:
        client = OpenAI(base_url=url + "/v1", api_key="unused-on-loopback", max_retries=0)
        reply = client.chat.completions.create(
            model=f"single:{MODEL}", messages=[{"role": "user", "content": "What is 2 + 3?"}],
            max_tokens=16, temperature=0.0, seed=1)
        run_id = reply.model_extra["seasoned"]["run_id"]
        calls = app.state.service.store.get_run(run_id).calls  # the ledger forgets finished runs
        trace = client.get(f"/runs/{run_id}", cast_to=object)
    assert reply.choices[0].message.content.strip()
    assert len(calls) == 1 and calls[0].model == MODEL and calls[0].error is None
    assert 0 < calls[0].completion_tokens <= 16
    assert reply.usage.total_tokens == calls[0].total_tokens
    assert trace["run"]["model"] == MODEL and trace["run"]["strategy"] == "single"
