"""Concurrent calls of the embedded model decoded as one batch: same samples as alone, cancellation, prefix reuse."""

import asyncio

import pytest
from seasoned.models import Budget, Gateway, Ledger
from seasoned.models import local as local_provider

pytestmark = pytest.mark.real_model
MODEL = "local/smollm2-135m"
PROMPT = "Write a short story about a cat who finds a key."


def engine():
    return local_provider.load("smollm2-135m").engine(None)


@pytest.fixture
def one_thread():
    """Seeded samples equal alone and batched with one decoding thread (see models/local_batch.py: with two,
    llama.cpp's attention splits its work by the batch's shape); the default follows the machine's load."""
    running = engine()
    configured, running.n_threads = running.n_threads, 1
    yield
    running.n_threads = configured


async def test_batched_samples_equal_the_same_samples_run_alone(one_thread):
    gw = Gateway(MODEL, ledger=Ledger())
    alone = [await gw.acomplete(PROMPT, max_tokens=24, seed=40 + i, temperature=1.0) for i in range(4)]
    engine().peak_batch = 0
    together = await gw.asample(PROMPT, 4, seed=40, max_tokens=24, temperature=1.0)
    assert engine().peak_batch >= 2  # they really shared decoding steps
    assert sorted(c.text for c in together) == sorted(c.text for c in alone)
    assert len({c.text for c in alone}) > 1  # different seeds, different samples
    # a different prompt joining the running batch later (continuous batching) is not disturbed either. Its
    # greedy reply is compared: where it joins depends on timing, and on some CPUs (an AVX-512 Xeon here) the
    # kernels' last bits depend on the rows decoded together, enough to flip a temperature-1 draw now and then;
    # a real disturbance (another sequence's cells attended to, wrong positions) changes the greedy reply.
    other = "Name a colour."
    other_alone = await gw.acomplete(other, max_tokens=12, temperature=0.0)
    first = asyncio.ensure_future(gw.acomplete(PROMPT, max_tokens=40, seed=41, temperature=1.0))
    await asyncio.sleep(0.5)
    late = await gw.acomplete(other, max_tokens=12, temperature=0.0)
    assert late.text == other_alone.text
    assert (await first).text.startswith(alone[1].text)  # the same sample, 40 tokens long instead of 24


async def test_a_cancelled_sample_leaves_the_batch_and_is_charged_what_it_generated(one_thread):
    gw = Gateway(MODEL, ledger=Ledger())
    budget = Budget(max_tokens=100_000)
    await gw.acomplete("Say yes.", max_tokens=1, budget=budget)  # loaded: what follows is generation time
    alone = await gw.acomplete(PROMPT, max_tokens=20, seed=5, temperature=1.0, budget=budget)
    long_calls = [asyncio.ensure_future(gw.acomplete("Write a very long story about the sea.", max_tokens=400,
                                                     seed=i, temperature=1.0, budget=budget)) for i in range(2)]
    short = await gw.acomplete(PROMPT, max_tokens=20, seed=5, temperature=1.0, budget=budget)
    assert short.text == alone.text  # decoded beside two others, still the same sample
    for call in long_calls:
        call.cancel()
    await asyncio.gather(*long_calls, return_exceptions=True)
    cancelled = [r for r in gw.ledger.calls() if r.error == "cancelled"]
    assert len(cancelled) == 2
    for record in cancelled:
        assert 0 < record.completion_tokens < 400 and record.prompt_tokens > 0
    assert budget.spent.tokens == gw.ledger.totals().total_tokens  # what was generated, charged once
    assert not engine().busy()  # the batch is empty again
    after = await gw.acomplete("Say yes.", max_tokens=4)
    assert after.completion_tokens > 0


async def test_a_prompt_decoded_before_is_reused_not_recomputed(one_thread):
    gw = Gateway(MODEL, ledger=Ledger())
    prompt = [{"role": "system", "content": "You are a careful assistant who answers in one short sentence. " * 4},
              {"role": "user", "content": "What colour is the sky?"}]
    first = await gw.acomplete(prompt, max_tokens=8, seed=1)
    decoded = engine().prefill_tokens
    second = await gw.acomplete(prompt, max_tokens=8, seed=1)
    assert engine().prefill_tokens == decoded  # the whole prompt came from the first call's cache
    assert second.text == first.text and second.prompt_tokens == first.prompt_tokens
    follow_up = prompt[:1] + [{"role": "user", "content": "What colour is grass?"}]
    await gw.acomplete(follow_up, max_tokens=4, seed=1)
    assert 0 < engine().prefill_tokens - decoded < first.prompt_tokens  # only what differs was decoded
    fresh = [{"role": "user", "content": "Describe a quiet harbour at dawn in three sentences. " * 3}]
    decoded = engine().prefill_tokens
    replies = await gw.asample(fresh, 4, seed=3, max_tokens=4)
    assert engine().prefill_tokens - decoded < replies[0].prompt_tokens  # four samples, one prompt decoded


async def test_samples_wait_for_room_when_the_batch_is_full():
    from seasoned.models.local_batch import MAX_SEQUENCES

    gw = Gateway(MODEL, ledger=Ledger(), max_concurrency=MAX_SEQUENCES + 4)
    n = MAX_SEQUENCES + 3
    replies = await gw.asample("Say a number.", n, seed=100, max_tokens=6, temperature=1.0)
    assert len(replies) == n and all(r.completion_tokens > 0 for r in replies)
    assert engine().peak_batch <= MAX_SEQUENCES


def test_a_full_cache_is_cleared_between_batches_and_samples_stay_the_same(one_thread):
    from seasoned.models.local_batch import BatchEngine, Request

    model = local_provider.load("smollm2-135m")
    small = BatchEngine(model, n_ctx=80, n_threads=1, name="small")  # 160 KV cells: fewer than 6 calls need
    try:
        prompts = [model.prompt_tokens([{"role": "user", "content": f"Tell me a fact about the number {i}."}])
                   for i in range(6)]
        # greedy: calls that wait for room join a running batch mid-way, and on some CPUs (an AVX-512 Xeon here)
        # a late joiner's last bits move enough to flip a temperature-1 draw now and then (see the first test);
        # a cache cleared wrongly (cells attended to across sequences, wrong positions) changes greedy replies
        requests = [Request(prompt=p, max_tokens=30, temperature=0.0, seed=i) for i, p in enumerate(prompts)]
        batched = [f.result() for f in [small.submit(r) for r in requests]]
        assert small.clears >= 1  # the cache was cleared on the way
        alone = [engine().submit(Request(prompt=p, max_tokens=30, temperature=0.0, seed=i)).result()
                 for i, p in enumerate(prompts)]
        assert [r["text"] for r in batched] == [r["text"] for r in alone]
    finally:
        small.close()


async def test_cores_lent_to_work_beside_the_model_are_not_decoded_with_and_come_back():
    import llama_cpp
    from seasoned.models.cores import lend_cores

    gw = Gateway(MODEL, ledger=Ledger())
    running = engine()
    configured, running.n_threads = running.n_threads, 2  # as on an idle 2-core machine
    try:
        with lend_cores(1):  # e.g. a background adapter training
            lent = await gw.acomplete(PROMPT, max_tokens=4, seed=5)
            assert llama_cpp.llama_n_threads(running.ctx) == 1
        back = await gw.acomplete(PROMPT, max_tokens=4, seed=5)
        assert llama_cpp.llama_n_threads(running.ctx) == 2
        assert lent.completion_tokens == back.completion_tokens == 4
    finally:
        running.n_threads = configured
