"""A configuration error (unknown model, missing GGUF, unreachable endpoint, missing or refused key) is raised
from Agent.run/arun/stream before any sampling fan-out, as one ModelConfigError line; transient provider
errors still retry."""

import socket

import pytest
from seasoned.agents.episodes import arun_environment
from seasoned.errors import ModelConfigError
from seasoned.graphs import Agent
from seasoned.models import Gateway, Ledger, scripted


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def agent(model: str, tmp_path) -> Agent:
    """An agent with its own ledger (the default one is shared by every test of the session)."""
    return Agent(gateway=Gateway(model, ledger=Ledger()), db_url=f"sqlite:///{tmp_path}/runs.db",
                 checkpoint=False, curate=False, strategy="best_of_n-8")


@pytest.mark.parametrize("model, fragment", [
    ("local/missing.gguf", "GGUF file not found"),
    ("nosuchprovider/model", "not a model string litellm knows"),
    ("scripted/never-registered", "is not registered"),
])
def test_a_wrong_model_raises_from_run_and_stream(tmp_path, model, fragment):
    bad = agent(model, tmp_path)
    with pytest.raises(ModelConfigError, match=fragment):
        bad.run("What is 2 + 2?")
    with pytest.raises(ModelConfigError, match=fragment):
        list(bad.stream("What is 2 + 2?"))
    assert bad.gateway.ledger.totals().calls == 0  # nothing was sent
    failed = bad.store.list_runs(limit=5)
    assert failed and all(r.status == "failed" and fragment in (r.error or "") for r in failed)
    bad.close()


def test_an_unreachable_api_base_raises_before_any_call(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    ledger = Ledger()
    bad = Agent(gateway=Gateway("openai/some-model", ledger=ledger, api_base=url, api_key="k"),
                db_url=f"sqlite:///{tmp_path}/runs.db", checkpoint=False, strategy="best_of_n-8")
    with pytest.raises(ModelConfigError, match=f"could not reach {url} \\(api_base"):
        bad.run("What is 2 + 2?")
    assert ledger.totals().calls == 0
    bad.close()


def test_a_missing_api_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    bad = agent("openai/gpt-4o-mini", tmp_path)
    with pytest.raises(ModelConfigError, match="no API key: set OPENAI_API_KEY"):
        bad.run("What is 2 + 2?")
    bad.close()


def test_a_refused_key_ends_the_run_without_retries(tmp_path):
    import litellm

    def refuse(messages, params):
        raise litellm.AuthenticationError(message="invalid api key", llm_provider="scripted", model="refused")

    model = scripted.register("refused", fn=refuse)
    bad = agent("scripted/refused", tmp_path)
    with pytest.raises(ModelConfigError, match="authentication failed"):
        bad.run("What is 2 + 2?")
    assert model.calls <= 8  # each sample tried once: a refused key is never retried
    bad.close()


def test_transient_errors_still_retry(tmp_path):
    model = scripted.register("flaky", replies=[scripted.rate_limit(), scripted.server_error()],
                              fn=lambda messages, params: "2 + 2 = 4\nAnswer: 4")
    good = Agent("scripted/flaky", db_url=f"sqlite:///{tmp_path}/runs.db", checkpoint=False, curate=False,
                 strategy="single")
    good.gateway.retry.base_delay = 0.0
    result = good.run("What is 2 + 2?")
    assert result.answer == "4" and model.calls == 3
    good.close()


async def test_environment_runs_check_the_model_first():
    with pytest.raises(ModelConfigError, match="GGUF file not found"):
        await arun_environment("arithmetic", model="local/missing.gguf", n=2, out=lambda _: None)
