"""The embedded model (SmolLM2-135M via llama.cpp) end to end. Real, so a little slower; runs in CI too."""

import asyncio

import pytest

from seasoned.models import Budget, Gateway, Ledger, providers

pytestmark = pytest.mark.real_model
MODEL = "local/smollm2-135m"


def test_embedded_model_answers_a_chat_through_litellm():
    litellm = providers.litellm()
    response = litellm.completion(model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16)
    assert response.choices[0].message.content.strip()
    assert 0 < response.usage.completion_tokens <= 16
    assert response.usage.prompt_tokens > 0


def test_max_tokens_is_a_hard_cap_even_inside_a_multibyte_character():
    # llama-cpp-python skips its max_tokens check while an emoji (several tokens) is incomplete
    litellm = providers.litellm()
    messages = [{"role": "user", "content": "Reply with five emojis only, like 🎉🌟🍕🐱🚀."}]
    for seed in range(4):
        response = litellm.completion(model=MODEL, messages=messages, max_tokens=2, temperature=1.0, seed=seed)
        assert 0 < response.usage.completion_tokens <= 2
        assert response.choices[0].finish_reason == "length"


def test_gateway_reply_is_reproducible_with_a_seed_and_exactly_reserved():
    gw = Gateway(MODEL, ledger=Ledger())
    budget = Budget(max_tokens=10_000)
    first = gw.complete("Write one word.", max_tokens=12, temperature=1.0, seed=7, budget=budget)
    again = gw.complete("Write one word.", max_tokens=12, temperature=1.0, seed=7, budget=budget)
    assert first.text == again.text
    assert first.prompt_tokens == again.prompt_tokens > 0
    assert budget.spent.tokens == first.total_tokens + again.total_tokens == gw.ledger.totals().total_tokens


async def test_cancelled_local_generation_stops_and_is_accounted():
    gw = Gateway(MODEL, ledger=Ledger())
    await gw.acomplete("Say yes.", max_tokens=1)  # the model is loaded: the wait below is generation time
    async with gw.samples("Write a long story about a cat.", 1, max_tokens=400, temperature=0.8) as stream:
        # let it generate a few tokens (400 would take over 3 s at this model's fastest)
        await asyncio.sleep(1.0)
        await stream.cancel()
    record = gw.ledger.calls()[-1]
    assert record.error == "cancelled"
    assert 0 < record.completion_tokens < 400
    # the model is free again afterwards
    reply = await gw.acomplete("Say yes.", max_tokens=4)
    assert reply.completion_tokens > 0
