"""Experience that pays: verified demonstrations replayed as chat turns, a bandit that learns which form
of memory helps, verified answers reused after a re-check, and memory context charged to the budget."""

import re

import pytest
from seasoned.agents.solver import build_messages
from seasoned.envs import get_env
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.context import ContextBuilder, demo_key
from seasoned.memory import MemoryBank, MemoryItem
from seasoned.models import Budget, Gateway, Ledger, scripted


@pytest.fixture
def bank(tmp_path):
    bank = MemoryBank.open(f"sqlite:///{tmp_path}/mem.db", namespace="exp", chroma_path=str(tmp_path / "chroma"))
    yield bank
    bank.close()


def _sum_of(text: str) -> int:
    a, b = re.findall(r"What is (\d+) \+ (\d+)\?", text)[-1]
    return int(a) + int(b)


def agent_for(bank, tmp_path, name, fn, *, strategy="single", channel="auto", seed=0):
    model = scripted.register(name, fn=fn)
    agent = Agent(gateway=Gateway(f"scripted/{name}", ledger=Ledger()), memory=bank, namespace="exp",
                  strategy=parse_strategy(strategy, seed=seed), db_url=f"sqlite:///{tmp_path}/runs.db",
                  memory_channel=channel, checkpoint=False)
    return agent, model


def test_demonstrations_are_given_as_earlier_chat_turns_and_notes_in_the_system_message():
    demos = [{"task": "What is 1 + 2?", "reply": "1 + 2 = 3\nAnswer: 3"},
             {"task": "What is 4 + 4?", "reply": "Answer: 8"}]
    messages = build_messages("What is 5 + 6?", context="- add the ones first", demonstrations=demos)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "add the ones first" in messages[0]["content"]
    assert messages[1]["content"].startswith("What is 1 + 2?")
    assert messages[2]["content"] == "1 + 2 = 3\nAnswer: 3"
    assert messages[-1]["content"].startswith("What is 5 + 6?")
    assert "add the ones first" not in messages[-1]["content"]


def test_a_verified_run_becomes_a_demonstration_that_later_runs_see_as_turns(bank, tmp_path):
    env = get_env("addition")
    first, second = env.tasks(n=2, difficulty=2)

    def solve(messages, params):
        return f"Answer: {_sum_of(messages[-1]['content'])}"

    agent, model = agent_for(bank, tmp_path, "exp-demo", solve, channel="demos")
    assert agent.run(first, env=env).verified
    stored = bank.get_by_key(demo_key(first.prompt), namespace="exp")
    assert stored is not None and stored.kind == "demonstration" and stored.verified
    assert stored.data["task"] == first.prompt and stored.data["reply"] == f"Answer: {first.metadata['answer']}"

    result = agent.run(second, env=env)
    messages = model.seen[-1][0]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"].startswith(first.prompt.splitlines()[0])
    assert result.memory["channel"] == "demos" and result.memory["demonstrations"] == [stored.id]
    assert stored.id in result.memory_ids


def test_a_failed_run_stores_no_demonstration(bank, tmp_path):
    env = get_env("addition")
    task = env.tasks(n=1, difficulty=2)[0]
    agent, _ = agent_for(bank, tmp_path, "exp-wrong", lambda m, p: "Answer: -1", channel="demos")
    assert not agent.run(task, env=env).verified
    assert bank.get_by_key(demo_key(task.prompt), namespace="exp") is None


def test_the_bandit_moves_toward_the_channel_that_pays(bank, tmp_path):
    """A model that is right only when it sees demonstrations: the sampler learns to give it them."""
    env = get_env("addition")
    tasks = env.tasks(n=40, difficulty=2)
    seeded = tasks[0]
    bank.put(demo_key(seeded.prompt), {
        "kind": "demonstration", "title": seeded.prompt, "content": f"Answer: {seeded.metadata['answer']}",
        "verified": True, "data": {"task": seeded.prompt, "reply": f"Answer: {seeded.metadata['answer']}"}},
        namespace="exp")
    bank.add(MemoryItem(kind="strategy", title="adding", content="Add the ones, then the tens."), namespace="exp",
             actor="human")

    def only_with_demos(messages, params):
        shown_demos = sum(m["role"] == "assistant" for m in messages)
        return f"Answer: {_sum_of(messages[-1]['content']) + (0 if shown_demos else 1)}"

    agent, _ = agent_for(bank, tmp_path, "exp-bandit", only_with_demos)
    channels = [agent.run(task, env=env).memory["channel"] for task in tasks[1:]]
    counts = bank.channels.counts("exp", "scripted/exp-bandit", "addition")
    assert counts["demos"].successes > 0 and counts["demos"].failures == 0
    assert counts["none"].successes == 0 and counts["notes"].successes == 0
    late = channels[-15:]
    assert sum("demos" in c for c in late) >= 13, channels


def test_a_cached_verified_answer_is_rechecked_before_it_is_accepted(bank, tmp_path):
    env = get_env("addition")
    task = env.tasks(n=1, difficulty=2)[0]
    right = f"Answer: {task.metadata['answer']}"
    agent, model = agent_for(bank, tmp_path, "exp-cache", lambda m, p: right, channel="none")
    assert agent.run(task, env=env).verified
    calls = model.calls

    again = agent.run(task, env=env)  # the same task: the stored reply is re-checked, no model call
    assert again.verified and again.memory["cache_hit"]
    assert model.calls == calls and again.spend.tokens == 0
    assert again.candidates[0]["kind"] == "cached"

    item = bank.get_by_key(demo_key(task.prompt), namespace="exp")  # a stale cache entry fails its re-check
    bank.put(item.key, {**item.model_dump(include={"kind", "title", "content", "verified"}),
                        "data": {**item.data, "reply": "Answer: 0"}}, namespace="exp")
    third = agent.run(task, env=env)
    assert third.verified and not third.memory["cache_hit"]
    assert [c["kind"] for c in third.candidates] == ["cached", "sample"]
    assert third.verdicts[0]["passed"] is False and model.calls == calls + 1


def test_memory_context_is_charged_to_the_budget(bank, tmp_path):
    env = get_env("addition")
    tasks = env.tasks(n=6, difficulty=2)
    for task in tasks[:4]:
        bank.put(demo_key(task.prompt), {
            "kind": "demonstration", "title": task.prompt, "content": f"Answer: {task.metadata['answer']}",
            "verified": True, "data": {"task": task.prompt, "reply": f"Answer: {task.metadata['answer']}"}},
            namespace="exp")

    def solve(messages, params):
        return f"Answer: {_sum_of(messages[-1]['content'])}"

    with_demos, _ = agent_for(bank, tmp_path, "exp-charge-demos", solve, channel="demos")
    without, _ = agent_for(bank, tmp_path, "exp-charge-none", solve, channel="none")
    rich = with_demos.run(tasks[4], env=env)
    plain = without.run(tasks[4], env=env)
    assert rich.memory["demonstrations"] and not plain.memory["demonstrations"]
    assert rich.spend.prompt_tokens > plain.spend.prompt_tokens + 40
    assert rich.spend.tokens == with_demos.gateway.ledger.totals(run_id=rich.run_id).total_tokens

    tight = with_demos.run(tasks[5], env=env, budget={"max_tokens": 60})  # no room for demonstrations
    assert tight.memory["demonstrations"] == [] and tight.spend.tokens <= 60


def test_context_builder_respects_a_fixed_channel_and_names_bad_ones(bank):
    with pytest.raises(ValueError, match="memory_channel"):
        ContextBuilder(bank, "exp", "m", channel="prose")
    builder = ContextBuilder(bank, "exp", "m", channel="notes")
    built = builder._build("What is 2 + 2?", Budget(max_tokens=1000), 1, 64)
    assert built.channel == "none" and "nothing to offer" in built.reason


def test_a_solved_episode_becomes_a_demonstration_replayed_to_the_actor(bank, tmp_path):
    """Interactive environments use the same loop: the steps that solved an episode are compacted into
    a demonstration, and the next episode's actor sees them as earlier chat turns."""
    from test_actor import CounterEnv

    env = CounterEnv()
    task = env.get_task("c")
    replies = iter(["```action\nadd 5\n```", "```action\nsubmit\n```"] * 4)
    agent, model = agent_for(bank, tmp_path, "exp-actor", lambda m, p: next(replies), channel="demos")
    assert agent.run(task, env=env).verified
    stored = bank.get_by_key(demo_key(task.prompt), namespace="exp")
    assert stored is not None and "add(k=5) -> value = 5" in stored.data["reply"]

    other = type(task)("d", env.name, "Make the value 5, please.", metadata={"target": 5})
    agent.run(other, env=env)
    first_call = model.seen[-2][0]
    assert [m["role"] for m in first_call[:3]] == ["system", "user", "assistant"]
    assert "Solved earlier with these actions" in first_call[2]["content"]


def test_a_verified_reply_is_compacted_to_the_reasoning_that_reaches_its_answer():
    from seasoned.agents.curator import compact_reply

    noisy = "To solve the equation 92 + 81, we can combine the two 9's: 92 + 81 = 173.\nI'll do more next time."
    assert compact_reply(noisy, "173", "What is 92 + 81?") == "92 + 81 = 173\nAnswer: 173"
    assert compact_reply("54 + 20 = 74\n\nThe answer is: 74", "74", "What is 54 + 20?") == "54 + 20 = 74\nAnswer: 74"
    assert compact_reply("Answer: 5", "5", "What is 2 + 3?") == "Answer: 5"
    # a line that shares only filler words with the task ("is") shows nothing of how to get there
    assert compact_reply("Hmm.\nso it is indeed 167.", "167", "What is 93 + 74?") == "Answer: 167"
    assert compact_reply("93 plus 74 is 167.", "167", "What is 93 + 74?") == "93 plus 74 is 167\nAnswer: 167"
    code = "Here it is:\n```python\ndef f():\n    return 1\n```\nDone."
    assert compact_reply(code, "def f(): ...", "Write f.") == "```python\ndef f():\n    return 1\n```"


def test_without_a_checker_feedback_credits_the_channel_the_run_used(bank, tmp_path):
    agent, _ = agent_for(bank, tmp_path, "exp-feedback", lambda m, p: "Answer: 4", strategy="single", channel="none")
    result = agent.run("What is 2 + 2?")
    assert result.memory["channel"] == "none"
    before = bank.channels.counts("exp", "scripted/exp-feedback", "general")["none"]
    assert before.trials == 0  # nothing checked the answer during the run
    agent.feedback(result.run_id, success=True)
    after = bank.channels.counts("exp", "scripted/exp-feedback", "general")["none"]
    assert (after.successes, after.failures) == (1, 0)


def test_demonstrations_that_show_their_work_go_first_and_only_two_are_shown(bank):
    """A bare ``Answer: X`` lifts a small model far less than a line from the task to its answer, and two
    demonstrations lift it as much as four at less cost (graphs/context.py MAX_DEMOS)."""
    shown = {"What is 12 + 30?": "12 + 30 = 42\nAnswer: 42", "What is 15 + 31?": "15 + 31 = 46\nAnswer: 46",
             "What is 13 + 30?": "Answer: 43", "What is 12 + 31?": "Answer: 43"}
    for task, reply in shown.items():
        bank.put(demo_key(task), {"kind": "demonstration", "title": task, "content": reply, "verified": True,
                                  "data": {"task": task, "reply": reply}}, namespace="exp")
    built = ContextBuilder(bank, "exp", "m", channel="demos")._build("What is 12 + 30?!", Budget(), 1, 64)
    assert len(built.demos) == 2
    assert all("=" in demo["reply"] for demo in built.demos)  # the bare answers are closer, yet not shown


def test_a_cold_namespace_samples_more_until_it_has_demonstrations_to_show(bank, tmp_path):
    """Cold start: with no demonstration to show, a checked ``single`` question draws up to COLD_SAMPLES
    samples (first-finish) so the first verified replies come sooner; once the scope holds two, one sample."""
    from seasoned.graphs.context import COLD_SAMPLES

    env = get_env("addition")
    tasks = env.tasks(n=4, difficulty=2, seed=3)
    calls = {"n": 0}

    def right_every_fourth(messages, params):
        calls["n"] += 1
        return f"Answer: {_sum_of(messages[-1]['content']) + (0 if calls['n'] % 4 == 0 else 1)}"

    agent, model = agent_for(bank, tmp_path, "exp-cold", right_every_fourth, channel="demos")
    first = agent.run(tasks[0], env=env)
    assert first.verified and 4 <= len(first.candidates) <= COLD_SAMPLES  # (the 4th sample is right)
    assert "cold start" in first.memory["reason"]
    none = bank.channels.counts("exp", "scripted/exp-cold", "addition")["none"]
    assert (none.successes, none.failures) == pytest.approx((1 / len(first.candidates), 1 - 1 / len(first.candidates)))
    assert agent.run(tasks[1], env=env).verified  # the second demonstration of the scope
    warm = agent.run(tasks[2], env=env)
    assert len(warm.candidates) == 1 and "cold start" not in warm.memory["reason"]

    off, _ = agent_for(None, tmp_path, "exp-cold-off", right_every_fourth)
    assert len(off.run(tasks[3], env=env).candidates) == 1  # without memory nothing changes: single is one


def test_repeated_questions_are_answered_from_the_cache_once_solved(tmp_path, monkeypatch):
    """The demo's seed-7331 stream repeats 6 questions 13 times in 30 tasks (62 + 56 five times), and memory
    on solved none of them at one sample each (~4% a sample), so no repeat could hit the cache. The cold
    start solves the first questions, and every repeat of a question solved before is a cache hit."""
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.delenv("SEASONED_DB_URL", raising=False)
    from rich.console import Console
    from seasoned import demo

    calls = {"n": 0}

    def rarely_right(messages, params):
        calls["n"] += 1
        return f"Answer: {_sum_of(messages[-1]['content']) + (0 if calls['n'] % 5 == 0 else 1)}"

    scripted.register("exp-rare", fn=rarely_right)
    stream = demo.stream_tasks(12, 7331, 0.3)
    summary = demo.run(model="scripted/exp-rare", tasks=12, seed=7331, strategy="single", repeat=0.3, static=False,
                       console=Console(file=open(tmp_path / "out.txt", "w")))
    solved_before, expected = set(), 0
    for task, passed in zip(stream, summary["on"]["passed"]):
        expected += task.id in solved_before
        if passed:
            solved_before.add(task.id)
    assert summary["repeats"] >= 4 and summary["cache_hits"] == expected >= 3
    assert summary["off"]["solved"] < summary["on"]["solved"]


def test_the_static_arm_shows_two_fixed_demonstrations_and_keeps_no_memory(tmp_path):
    from seasoned.benchmarks import experience

    def only_with_examples(messages, params):
        shown = [m["content"] for m in messages if m["role"] == "assistant"]
        right = len(shown) == 2 and shown[0].startswith("23 + 45 = 68")
        return f"Answer: {_sum_of(messages[-1]['content']) + (0 if right else 1)}"

    scripted.register("exp-static", fn=only_with_examples)
    stream = experience.Stream("addition", "addition", "single", 6, difficulty=2, tail=3)
    static = experience.run_arm(stream, "scripted/exp-static", "static", tmp_path, seed=5)
    off = experience.run_arm(stream, "scripted/exp-static", "off", tmp_path, seed=5)
    assert static.passed == [True] * 6 and off.passed == [False] * 6
    assert set(static.channels) == {"off"} and static.posterior == []
    with pytest.raises(Exception, match="examples"):
        Agent("scripted/exp-static", examples=[{"task": "What is 1 + 1?"}], record=False)
