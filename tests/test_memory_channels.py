"""The channel bandit: a new namespace starts from what paid on the same model elsewhere (counts only, never
content), and the adapter channels exist only when an active adapter does."""

from types import SimpleNamespace

import pytest
from seasoned.graphs.context import ContextBuilder, channel_priors, demo_key
from seasoned.memory import MemoryBank
from seasoned.memory.channels import ChannelCounts
from seasoned.models import Budget

MODEL, SCOPE = "scripted/chan", "addition"


@pytest.fixture
def bank(tmp_path):
    bank = MemoryBank.open(f"sqlite:///{tmp_path}/mem.db", namespace="new", chroma_path=str(tmp_path / "chroma"))
    yield bank
    bank.close()


def put_demos(bank, namespace, pairs):
    for a, b in pairs:
        task = f"What is {a} + {b}?"
        reply = f"{a} + {b} = {a + b}\nAnswer: {a + b}"
        bank.put(demo_key(task), {"kind": "demonstration", "title": task, "content": reply, "verified": True,
                                  "task_signature": SCOPE, "data": {"task": task, "reply": reply}},
                 namespace=namespace)


def choices(bank, namespace, *, n=60, adapters=None):
    """The channel the bandit picks for ``n`` different tasks (seeded: reproducible)."""
    builder = ContextBuilder(bank, namespace, MODEL, SCOPE, seed=1, adapters=adapters)
    return [builder._build(f"What is {10 + i} + {50 + i}?", Budget(), 1, 64).channel for i in range(n)]


def test_pooled_counts_come_from_other_namespaces_of_the_same_model_and_scope(bank):
    bank.channels.credit("a", MODEL, SCOPE, "demos", successes=3, failures=7)
    bank.channels.credit("b", MODEL, SCOPE, "demos", successes=2, failures=8)
    bank.channels.credit("new", MODEL, SCOPE, "demos", successes=0, failures=5)  # the namespace's own
    bank.channels.credit("a", "scripted/other", SCOPE, "demos", successes=50)  # another model
    bank.channels.credit("a", MODEL, "general", "demos", successes=50)  # another scope
    pooled = bank.channels.pooled(MODEL, SCOPE, exclude="new")
    assert (pooled["demos"].successes, pooled["demos"].failures) == (5, 15)
    assert pooled["none"].trials == 0 and pooled["adapter"].trials == 0


def test_a_channel_that_paid_elsewhere_is_tried_first_and_six_failures_do_not_bury_it(bank):
    put_demos(bank, "new", [(12, 30), (15, 31), (22, 41)])
    builder = ContextBuilder(bank, "new", MODEL, SCOPE, seed=1)
    first = builder._build("What is 14 + 33?", Budget(), 1, 64)
    assert first.channel == "none" and "not tried yet" in first.reason  # nothing known anywhere: cheapest first
    bank.channels.credit_question("new", MODEL, SCOPE, "none", passed=0, drawn=8)
    assert builder._build("What is 14 + 33?", Budget(), 1, 64).channel == "demos"  # then the next untried one
    bank.channels.reset("new")

    bank.channels.credit("old", MODEL, SCOPE, "demos", successes=30, failures=70)
    bank.channels.credit("old", MODEL, SCOPE, "none", successes=3, failures=97)
    informed = choices(bank, "new")
    assert informed.count("demos") >= 50, informed  # what pays on this model comes first

    bank.channels.credit("new", MODEL, SCOPE, "demos", failures=6)  # six unlucky samples here
    bank.channels.credit("new", MODEL, SCOPE, "none", failures=2)
    after = choices(bank, "new")
    assert after.count("demos") >= 40, after


def test_the_prior_from_elsewhere_is_worth_a_few_samples_not_all_of_them():
    here = {c: ChannelCounts(c) for c in ("none", "demos")}
    elsewhere = {"demos": ChannelCounts("demos", 300, 700), "none": ChannelCounts("none", 30, 970)}
    priors = channel_priors(here, elsewhere)
    alpha, beta = priors["demos"]
    assert alpha + beta == pytest.approx(6.0) and alpha / (alpha + beta) == pytest.approx(0.3, abs=0.01)
    assert priors["none"][0] / sum(priors["none"]) < 0.05
    # a channel never seen anywhere starts from the pooled rate, worth 2 samples
    assert sum(priors["adapter"]) == pytest.approx(2.0)


def test_content_never_crosses_namespaces(bank):
    put_demos(bank, "other", [(12, 30), (15, 31)])
    builder = ContextBuilder(bank, "new", MODEL, SCOPE, channel="demos", seed=0)
    built = builder._build("What is 12 + 31?", Budget(), 1, 64)
    assert built.demos == [] and built.channel == "none"
    assert builder.cold()


def test_adapter_channels_are_not_offered_without_an_active_adapter(bank):
    put_demos(bank, "new", [(12, 30), (15, 31)])
    picked = choices(bank, "new", n=30, adapters=lambda ns, model, scope: None)
    assert not any("adapter" in c for c in picked)
    builder = ContextBuilder(bank, "new", MODEL, SCOPE, channel="adapter", adapters=lambda ns, model, scope: None)
    built = builder._build("What is 14 + 33?", Budget(), 1, 64)
    assert built.channel == "none" and built.adapter is None and "nothing to offer" in built.reason
    # an API model has no adapter: the bank's own lookup refuses it, and the channel is simply absent
    assert not any("adapter" in c for c in choices(bank, "new", n=10))


def test_an_active_adapter_is_offered_and_carried_by_the_context(bank, tmp_path):
    put_demos(bank, "new", [(12, 30), (15, 31)])
    adapter = SimpleNamespace(id="ad1", path=tmp_path / "a.gguf", version=3)
    asked = []

    def lookup(namespace, model, scope):
        asked.append((namespace, model, scope))
        return adapter

    bank.channels.credit("old", MODEL, SCOPE, "adapter", successes=50, failures=50)
    for channel in ("none", "demos"):
        bank.channels.credit("old", MODEL, SCOPE, channel, successes=5, failures=95)
    picked = choices(bank, "new", n=30, adapters=lookup)
    assert asked[0] == ("new", MODEL, SCOPE)
    assert sum(c.startswith("adapter") for c in picked) >= 20, picked
    builder = ContextBuilder(bank, "new", MODEL, SCOPE, channel="adapter+demos", adapters=lookup)
    built = builder._build("What is 14 + 33?", Budget(), 1, 64)
    assert built.channel == "adapter+demos" and len(built.demos) == 2
    assert built.adapter == {"id": "ad1", "path": str(tmp_path / "a.gguf"), "version": 3}
    assert "ad1" not in built.ids  # an adapter is not a memory item: item utilities never see it


def test_a_sample_drawn_with_the_adapter_channel_carries_the_adapter_to_the_gateway(bank, tmp_path, monkeypatch):
    """The solve threads the chosen adapter into the gateway call of every sample drawn with it (and of no
    other); the adapter's outcome credits the adapter channel."""
    import re

    from seasoned.envs import get_env
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.models import Gateway, Ledger, scripted

    class RecordingGateway(Gateway):
        """Records the adapter of each call; the scripted model itself serves none (local models do)."""

        async def acomplete(self, messages, *, adapter=None, **kwargs):
            self.adapters.append(adapter)
            return await super().acomplete(messages, **kwargs)

    env = get_env("addition")
    put_demos(bank, "new", [(12, 30), (15, 31)])
    adapter = SimpleNamespace(id="ad7", path=tmp_path / "ad7.gguf", version=1)
    monkeypatch.setattr(bank, "active_adapter", lambda model, scope, namespace=None: adapter)
    scripted.register("chan-adapter", fn=lambda messages, params: "Answer: " + str(
        sum(map(int, re.findall(r"What is (\d+) \+ (\d+)\?", messages[-1]["content"])[-1]))))
    gateway = RecordingGateway("scripted/chan-adapter", ledger=Ledger())
    gateway.adapters = []
    tasks = env.tasks(n=2, difficulty=2, seed=4)
    for channel, expected in (("adapter", str(tmp_path / "ad7.gguf")), ("demos", None)):
        agent = Agent(gateway=gateway, memory=bank, namespace="new", strategy=parse_strategy("single", seed=0),
                      memory_channel=channel, record=False, checkpoint=False, curate=False)
        result = agent.run(tasks[0] if channel == "adapter" else tasks[1], env=env)
        assert result.verified and result.memory["channel"] == channel
        assert gateway.adapters[-1] == expected
    counts = bank.channels.counts("new", "scripted/chan-adapter", "addition")
    assert (counts["adapter"].successes, counts["demos"].successes) == (1, 1)


def test_a_question_counts_once_however_many_samples_it_drew(bank):
    """Samples of one question share its difficulty: eight failures on one hard question are one failed
    question of the channel, not eight (they would bury a channel that pays on other questions)."""
    bank.channels.credit_question("new", MODEL, SCOPE, "demos", passed=0, drawn=8)
    bank.channels.credit_question("new", MODEL, SCOPE, "demos", passed=1, drawn=4)
    assert bank.channels.credit_question("new", MODEL, SCOPE, "demos", passed=0, drawn=0) is None
    demos = bank.channels.counts("new", MODEL, SCOPE)["demos"]
    assert demos.trials == pytest.approx(2.0) and demos.successes == pytest.approx(0.25)
