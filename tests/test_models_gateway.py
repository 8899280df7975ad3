"""The gateway's promises: hard budgets, retries, ledger, tags, fallbacks, parallel sampling, clear errors."""

import asyncio
import subprocess
import sys

import pytest
from seasoned.models import (
    Budget,
    BudgetExceeded,
    Gateway,
    Ledger,
    ModelCallError,
    ModelConfigError,
    RetryPolicy,
    call_tags,
    scripted,
)

FAST_RETRY = RetryPolicy(base_delay=0.001, max_delay=0.01)


def gateway(model: str, **kwargs) -> Gateway:
    return Gateway(model, ledger=Ledger(), retry=kwargs.pop("retry", FAST_RETRY), **kwargs)


async def test_budget_is_never_exceeded_by_fifty_concurrent_calls():
    scripted.register("words", fn=lambda messages, params: "one two three four five six seven eight", delay=0.01)
    gw = gateway("scripted/words", max_concurrency=50)
    budget = Budget(max_tokens=300)
    results = await asyncio.gather(
        *[gw.acomplete("count please", max_tokens=8, budget=budget) for _ in range(50)], return_exceptions=True
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(done) + len(refused) == 50
    assert done and refused  # some fit, the rest were refused before being made
    assert gw.ledger.totals().total_tokens <= 300
    assert budget.spent.tokens == gw.ledger.totals().total_tokens
    assert gw.ledger.totals().calls == len(done)  # a refused call is never made


async def test_call_and_usd_caps_refuse_calls_before_they_are_made():
    import litellm
    from seasoned.models import providers

    providers.litellm()
    litellm.register_model({"scripted/priced": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002,
                                                "litellm_provider": "scripted", "mode": "chat"}})
    scripted.register("priced", fn=lambda messages, params: "a b c d")
    gw = gateway("scripted/priced")
    reply = await gw.acomplete("hi", max_tokens=4)
    assert reply.cost_usd == pytest.approx(reply.prompt_tokens * 0.001 + reply.completion_tokens * 0.002)
    usd_budget = Budget(max_usd=0.02)
    with pytest.raises(BudgetExceeded, match="USD"):
        await gw.acomplete("hi", max_tokens=100, budget=usd_budget)  # could cost 0.2 USD
    calls_budget = Budget(max_calls=2)
    await gw.acomplete("hi", max_tokens=4, budget=calls_budget)
    await gw.acomplete("hi", max_tokens=4, budget=calls_budget)
    with pytest.raises(BudgetExceeded, match="calls"):
        await gw.acomplete("hi", max_tokens=4, budget=calls_budget)


async def test_wall_clock_budget_cuts_a_slow_call():
    scripted.register("slow", fn=lambda messages, params: "late", delay=5)
    gw = gateway("scripted/slow")
    with pytest.raises(BudgetExceeded, match="max_seconds"):
        await gw.acomplete("hi", budget=Budget(max_seconds=0.2))


async def test_child_budgets_charge_their_parent_and_never_outspend_it():
    scripted.register("fixed", fn=lambda messages, params: "x y z")
    gw = gateway("scripted/fixed")
    parent = Budget(max_tokens=100)
    child = parent.child(max_tokens=1000, name="subtask-1")
    reply = await gw.acomplete("hello", max_tokens=10, budget=child)
    assert parent.spent.tokens == child.spent.tokens == reply.total_tokens
    with pytest.raises(BudgetExceeded):
        await gw.acomplete("hello", max_tokens=200, budget=child)  # the child allows it, the parent does not


async def test_shrink_to_fit_lowers_max_tokens_instead_of_refusing():
    scripted.register("long", fn=lambda messages, params: " ".join(["w"] * 100))
    gw = gateway("scripted/long")
    budget = Budget(max_tokens=60)
    reply = await gw.acomplete("hi", max_tokens=500, budget=budget, shrink_to_fit=True)
    assert reply.finish_reason == "length"
    assert budget.spent.tokens <= 60


async def test_transient_errors_are_retried_then_succeed():
    scripted.register("flaky", replies=[scripted.rate_limit(), scripted.timeout(), scripted.server_error(), "ok"])
    gw = gateway("scripted/flaky")
    reply = await gw.acomplete("hi")
    assert reply.text == "ok"
    attempts = gw.ledger.calls()
    assert [r.attempt for r in attempts] == [1, 2, 3, 4]
    assert [r.error is None for r in attempts] == [False, False, False, True]


async def test_a_400_is_not_retried():
    model = scripted.register("bad", replies=[scripted.bad_request(), "never reached"])
    gw = gateway("scripted/bad")
    with pytest.raises(ModelCallError, match="bad request") as info:
        await gw.acomplete("hi")
    assert not info.value.transient
    assert model.calls == 1


async def test_retries_give_up_after_max_attempts():
    model = scripted.register("down", fn=lambda messages, params: scripted.server_error())
    gw = gateway("scripted/down", retry=RetryPolicy(max_attempts=3, base_delay=0.001))
    with pytest.raises(ModelCallError):
        await gw.acomplete("hi")
    assert model.calls == 3


async def test_ledger_totals_equal_the_sum_of_calls_and_calls_are_tagged():
    scripted.register("echo", fn=lambda messages, params: messages[-1]["content"])
    gw = gateway("scripted/echo")
    with call_tags(run_id="run-1"):
        with call_tags(subtask="s1", role="solver"):
            await gw.acomplete("alpha beta")
            await asyncio.gather(*[gw.acomplete("gamma delta epsilon") for _ in range(3)])
        await gw.acomplete("zeta", role="verifier")
    await gw.acomplete("other run", run_id="run-2")
    records = gw.ledger.calls(run_id="run-1")
    totals = gw.ledger.totals(run_id="run-1")
    assert totals.calls == 5
    assert totals.total_tokens == sum(r.total_tokens for r in records)
    assert totals.prompt_tokens == sum(r.prompt_tokens for r in records)
    assert gw.ledger.totals(run_id="run-1", role="solver").calls == 4
    assert gw.ledger.totals(run_id="run-1", role="verifier").calls == 1
    assert gw.ledger.totals(subtask="s1").calls == 4
    assert gw.ledger.totals(run_id="run-2").calls == 1


async def test_fallback_model_answers_when_the_primary_fails():
    scripted.register("primary-down", fn=lambda messages, params: scripted.server_error())
    scripted.register("backup", fn=lambda messages, params: "from backup")
    gw = gateway("scripted/primary-down|scripted/backup")
    reply = await gw.acomplete("hi")
    assert reply.text == "from backup"
    assert reply.model == "scripted/backup"
    assert gw.ledger.calls()[-1].model == "scripted/backup"


async def test_sampling_makes_n_separate_calls_with_consecutive_seeds():
    model = scripted.register("seeded", fn=lambda messages, params: f"seed {params.get('seed')}")
    gw = gateway("scripted/seeded")
    replies = await gw.asample("go", 5, seed=10, temperature=0.9)
    assert sorted(r.text for r in replies) == [f"seed {s}" for s in range(10, 15)]
    assert model.calls == 5
    assert all(params.get("n") in (None, 1) for _, params in model.seen)


async def test_leaving_a_sample_race_cancels_the_slow_calls_and_accounts_them():
    def reply(messages, params):
        return "fast" if params.get("seed") == 0 else "slow"

    scripted.register("race-fast", fn=reply)
    gw = gateway("scripted/race-fast")
    scripted.register("race-slow", fn=reply, delay=30)
    budget = Budget(max_tokens=10_000)
    async with gw.samples("go", 1, seed=0, budget=budget) as fast, \
            gw.samples("go", 4, seed=1, model="scripted/race-slow", budget=budget) as slow:
        first = await anext(aiter(fast))
        assert first.text == "fast"
        await slow.cancel()
    records = gw.ledger.calls()
    assert sum(r.error == "cancelled" for r in records) == 4
    assert budget.reserved.tokens == 0  # every reservation was settled
    assert budget.spent.tokens == sum(r.total_tokens for r in records)


async def test_concurrency_limit_holds():
    in_flight = 0
    peak = 0
    scripted.register("tracked", fn=lambda messages, params: "ok", delay=0.02)
    gw = gateway("scripted/tracked", max_concurrency=3)
    real_call = gw._call

    async def counting_call(*args, **kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await real_call(*args, **kwargs)
        finally:
            in_flight -= 1

    gw._call = counting_call
    await asyncio.gather(*[gw.acomplete("hi") for _ in range(12)])
    assert peak == 3


@pytest.mark.parametrize("model, fragment", [
    ("nonsense-model", "not a model string"),
    ("foo/bar", "not a model string"),
    ("local/missing/file.gguf", "GGUF file not found"),
    ("local/unknown-alias", "unknown"),
    ("scripted/never-registered", "not registered"),
    ("primary|", "empty name"),
])
def test_bad_model_strings_give_one_clear_error(model, fragment):
    with pytest.raises(ModelConfigError, match=fragment) as info:
        Gateway(model, ledger=Ledger()).complete("hi")
    assert "\n" not in str(info.value)


def test_unreachable_api_base_names_the_setting():
    gw = gateway("openai/gpt-4o-mini", retry=RetryPolicy(max_attempts=2, base_delay=0.001))
    with pytest.raises(ModelCallError, match="could not reach http://127.0.0.1:9 "):
        gw.complete("hi", api_base="http://127.0.0.1:9", api_key="sk-test", timeout=5)


def test_a_dead_port_from_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    gw = gateway("openai/gpt-4o-mini", retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ModelCallError, match="could not reach http://127.0.0.1:9/v1"):
        gw.complete("hi", api_key="sk-test", timeout=5)


@pytest.mark.parametrize("message", [
    "OpenAIException - Missing credentials. Please pass an `api_key`, or set the `OPENAI_API_KEY` variable.",
    "AuthenticationError: Incorrect API key provided",
])
async def test_a_missing_or_refused_key_is_not_retried(message):
    model = scripted.register("nokey", fn=lambda messages, params: scripted.server_error(message))
    gw = gateway("scripted/nokey", retry=RetryPolicy(max_attempts=4, base_delay=0.001))
    with pytest.raises(ModelConfigError, match="authentication failed.*API key"):
        await gw.acomplete("hi")
    assert model.calls == 1  # a 500 that says the key is missing is not transient


async def test_a_plain_server_error_is_still_retried():
    model = scripted.register("flaky", replies=[scripted.server_error()], fn=lambda messages, params: "ok")
    assert (await gateway("scripted/flaky").acomplete("hi")).text == "ok"
    assert model.calls == 2


def test_sync_complete_works_inside_a_running_loop():
    scripted.register("sync", fn=lambda messages, params: "sync ok")
    gw = gateway("scripted/sync")

    async def inside():
        return gw.complete("hi").text

    assert asyncio.run(inside()) == "sync ok"


def test_unknown_sampling_setting_is_rejected():
    scripted.register("plain", fn=lambda messages, params: "ok")
    with pytest.raises(ValueError, match="temprature"):
        gateway("scripted/plain").complete("hi", temprature=0.2)


def test_importing_the_gateway_is_light():
    code = ("import sys, seasoned.models; heavy = [m for m in ('litellm', 'llama_cpp', 'torch', 'chromadb') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_ledger_forgets_a_finished_run():
    scripted.register("forget", fn=lambda messages, params: "ok")
    gw = gateway("scripted/forget")
    await gw.acomplete("a", run_id="r1")
    await gw.acomplete("b", run_id="r2")
    assert gw.ledger.forget("r1") == 1
    assert gw.ledger.calls(run_id="r1") == [] and gw.ledger.totals().calls == 1


async def test_in_process_providers_get_what_litellm_would_give_them():
    """The gateway calls in-process providers' handlers itself (litellm's machinery skipped): the handler sees
    the same settings litellm passes, and a provider's own exception comes out as litellm maps it (a plain
    error is a connection failure, retried; one with a 4xx status is not)."""
    from seasoned.models import providers

    model = scripted.register("direct", fn=lambda messages, params: "ok")
    messages = [{"role": "user", "content": "hi"}]
    sampling = {"temperature": 0.3, "seed": 4, "stop": ["x"], "response_format": {"type": "json_object"}}
    await providers.litellm().acompletion(model="scripted/direct", messages=messages, max_tokens=5, num_retries=0,
                                          **sampling)
    await gateway("scripted/direct").acomplete(messages, max_tokens=5, **sampling)
    through_litellm, direct = model.seen[-2][1], model.seen[-1][1]
    assert direct == through_litellm

    scripted.register("crashy", replies=[ValueError("boom"), "ok"])
    gw = gateway("scripted/crashy")
    assert (await gw.acomplete("hi")).text == "ok"
    assert "APIConnectionError: boom" in gw.ledger.calls()[0].error
    scripted.register("refusing", replies=[ModelCallError("malformed", status_code=400), "never"])
    with pytest.raises(ModelCallError, match="malformed") as info:
        await gateway("scripted/refusing").acomplete("hi")
    assert not info.value.transient
