"""The solve graph: every strategy, early stop, first-finish, budgets, garbage output, resume after a kill."""

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from seasoned.graphs import Agent, StrategyConfig, parse_strategy
from seasoned.graphs.strategy import StrategyError
from seasoned.runs.verifier_stats import VerifierStats
from seasoned.graphs.voting import majority_stability
from seasoned.models import Gateway, Ledger, scripted

RIGHT = "42"


class Checker:
    """An environment-style check: the answer is right when the text ends with 42."""

    name = "env:test"

    def __init__(self):
        self.checked = []

    async def __call__(self, text):
        self.checked.append(text)
        passed = text.strip().endswith(RIGHT)
        return SimpleNamespace(passed=passed, reward=float(passed), details="ok" if passed else "expected 42")


def by_seed(answers: dict[int, str], default: str = "7", judge: str | None = None):
    """A scripted solver whose answer depends on the sample's seed (and a judge reply for judge prompts)."""

    def reply(messages, params):
        prompt = messages[-1]["content"]
        if judge is not None and "Proposed answer" in prompt:
            return judge
        if "List the mistakes" in prompt:
            return '{"issues": ["the sum is wrong"], "suggestion": "add again"}'
        return f"Let me think. Answer: {answers.get(params.get('seed'), default)}"

    return reply


def make_agent(name: str, reply, strategy, **kwargs) -> Agent:
    scripted.register(name, fn=reply, delay=kwargs.pop("delay", 0.0))
    return Agent(gateway=Gateway(f"scripted/{name}", ledger=Ledger()), record=False, checkpoint=False,
                 strategy=parse_strategy(strategy, seed=0), **kwargs)


@pytest.mark.parametrize("strategy", ["single", "best_of_n-4", "self_consistency-4", "revise-2", "adaptive-8"])
def test_every_strategy_returns_the_checked_answer(strategy):
    agent = make_agent(f"all-{strategy}", by_seed({0: RIGHT}), strategy)
    result = agent.run("What is 40 + 2?", checker=Checker())
    assert result.answer == RIGHT
    assert result.verified and result.verified_by == "env:test" and result.reward == 1.0
    assert result.spend.tokens == agent.gateway.ledger.totals(run_id=result.run_id).total_tokens > 0


def test_adaptive_stops_early_and_spends_less_than_best_of_n():
    answers = {2: RIGHT}  # the third sample is the first right one
    adaptive = make_agent("early-a", by_seed(answers), "adaptive-8")
    best_of_n = make_agent("early-b", by_seed(answers), "best_of_n-8")
    a = adaptive.run("What is 40 + 2?", checker=Checker())
    b = best_of_n.run("What is 40 + 2?", checker=Checker())
    assert a.verified and b.verified
    assert len(a.candidates) == 3  # a first wave of one, then a wave of two
    assert a.decisions[-1]["reason"] == "verified by env:test"
    assert a.spend.tokens < b.spend.tokens


def test_first_finish_cancels_samples_still_in_flight():
    def reply(messages, params):
        if params.get("seed") == 0:
            return f"Answer: {RIGHT}"
        raise AssertionError("slow samples must be cancelled before they answer")

    scripted.register("race-fast", fn=reply)
    slow = scripted.register("race-slow", fn=reply, delay=30)
    ledger = Ledger()
    gateway = Gateway("scripted/race-fast", ledger=ledger)

    class SplitGateway(Gateway):
        async def acomplete(self, messages, **kwargs):  # seed 0 answers at once, the rest take 30 s
            model = "scripted/race-fast" if kwargs.get("seed") == 0 else "scripted/race-slow"
            return await gateway.acomplete(messages, model=model, **kwargs)

    agent = Agent(gateway=SplitGateway("scripted/race-fast", ledger=ledger), record=False, checkpoint=False,
                  strategy=parse_strategy("adaptive-8", wave_size=4, first_wave=4, seed=0))
    result = agent.run("What is 40 + 2?", checker=Checker())
    assert result.verified
    statuses = sorted(c["status"] for c in result.candidates)
    assert statuses == ["cancelled", "cancelled", "cancelled", "ok"]
    assert slow.calls == 0  # cancelled during the provider's wait, before any reply
    assert sum(r.error == "cancelled" for r in ledger.calls(run_id=result.run_id)) == 3


def test_budget_exhaustion_returns_best_so_far_unverified_and_never_over_budget():
    agent = make_agent("budget", by_seed({}, default="13"), "adaptive-16")
    result = agent.run("What is 40 + 2?", checker=Checker(), budget={"max_tokens": 150})
    assert not result.verified
    assert result.answer == "13"  # best so far
    assert result.spend.tokens <= 150
    assert result.stop_reason == "budget spent"


def test_without_a_checker_agreement_stops_adaptive_and_verifies():
    agent = make_agent("agree", by_seed({}, default=RIGHT), "adaptive-16", )
    result = agent.run("What is 40 + 2?")
    assert result.answer == RIGHT
    assert result.verified and result.verified_by == "agreement"
    assert len(result.candidates) == 4  # 2-0 is not enough (0.66), 4-0 is (0.73)


def test_self_consistency_takes_the_majority():
    agent = make_agent("vote", by_seed({0: "5", 1: RIGHT, 2: RIGHT, 3: "9", 4: RIGHT}), "self_consistency-5")
    result = agent.run("What is 40 + 2?")
    assert result.answer == RIGHT
    assert len(result.candidates) == 5


def test_best_of_n_lets_the_judge_pick_and_discounts_it_by_its_precision():
    answer = by_seed({0: RIGHT, 1: "9"})

    def reply(messages, params):  # a judge that tells the right answer from the wrong one
        prompt = messages[-1]["content"]
        if "Proposed answer" in prompt:
            return f'{{"correct": {str(f"Answer: {RIGHT}" in prompt).lower()}, "score": 0.95, "reason": "checked"}}'
        return answer(messages, params)

    agent = make_agent("judge", reply, "best_of_n-2")
    result = agent.run("What is 40 + 2?")
    assert result.verified_by.startswith("judge:")
    first_confidence = result.confidence
    # the judge's acceptances turned out wrong three times: its word now counts for less
    for _ in range(3):
        agent.stats.record("default", result.verified_by, correct=False)
    again = agent.run("What is 40 + 2?")
    assert again.confidence < first_confidence
    assert not again.verified


def test_garbage_model_output_never_crashes_a_run():
    def garbage(messages, params):
        return "\x00}{ ``` {{{ not json at all ]]" if "Proposed answer" in messages[-1]["content"] else ""

    for strategy in ["best_of_n-3", "revise-2", "adaptive-6", "self_consistency-3"]:
        agent = make_agent(f"garbage-{strategy}", garbage, strategy)
        result = agent.run("What is 40 + 2?")
        assert not result.verified
        assert result.answer is None


def test_revise_uses_the_critique_to_fix_the_answer():
    def reply(messages, params):
        prompt = messages[-1]["content"]
        if "List the mistakes" in prompt:
            return '{"issues": ["40 + 2 is not 41"], "suggestion": "recount"}'
        return f"Answer: {RIGHT}" if "40 + 2 is not 41" in prompt else "Answer: 41"

    agent = make_agent("revise", reply, "revise-3")
    result = agent.run("What is 40 + 2?", checker=Checker())
    assert result.verified
    assert [c["kind"] for c in result.candidates] == ["sample", "revision"]
    assert result.spend.by_role.keys() >= {"solver", "critic"}


def test_strategy_strings():
    assert parse_strategy("best_of_n-8").n == 8
    assert parse_strategy("revise-3").max_rounds == 3
    assert parse_strategy("adaptive").name == "adaptive"
    assert isinstance(parse_strategy(StrategyConfig(name="single")), StrategyConfig)
    with pytest.raises(StrategyError, match="unknown"):
        parse_strategy("beam_search")
    with pytest.raises(StrategyError, match="positive whole number"):
        parse_strategy("best_of_n-x")


def test_majority_stability_numbers():
    assert majority_stability(["a", "a"])[1] == pytest.approx(0.875)
    assert majority_stability(["a", "a", "a"])[1] == pytest.approx(0.9375)
    assert majority_stability(["a", "b"])[1] == pytest.approx(0.5)
    assert majority_stability([None, None]) == (None, 0.0)


def test_verifier_stats_persist_in_sql(tmp_path):
    url = f"sqlite:///{tmp_path}/stats.db"
    stats = VerifierStats.open(url)
    before = stats.precision("ns", "judge:m")
    stats.record("ns", "judge:m", correct=False)
    assert VerifierStats.open(url).precision("ns", "judge:m") < before
    assert VerifierStats.open(url).precision("other", "judge:m") == before


KILLED_RUN = textwrap.dedent("""
    import os, sys
    from seasoned.graphs import Agent, parse_strategy
    from seasoned.models import Gateway, scripted

    calls = []
    def reply(messages, params):
        calls.append(params["seed"])
        if len(calls) == 5:          # the first sample of the third wave: die like kill -9
            os._exit(9)
        return f"Answer: {params['seed']}"  # all different: no agreement, so sampling goes on

    scripted.register("resumable", fn=reply)
    agent = Agent(gateway=Gateway("scripted/resumable", max_concurrency=1),
                  strategy=parse_strategy("adaptive-8", seed=0), db_url=sys.argv[1])
    agent.run("What is 40 + 2?", run_id="killed-run")
""")


def test_resume_after_a_kill_does_not_redo_finished_samples(tmp_path):
    url = f"sqlite:///{tmp_path}/runs.db"
    env = {**os.environ, "SEASONED_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", KILLED_RUN, url], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 9, result.stderr

    seen = []

    def reply(messages, params):
        seen.append(params["seed"])
        return f"Answer: {RIGHT}"

    scripted.register("resumable", fn=reply)
    os.environ["SEASONED_HOME"], old_home = str(tmp_path), os.environ["SEASONED_HOME"]
    try:
        agent = Agent(gateway=Gateway("scripted/resumable", ledger=Ledger()), db_url=url,
                      strategy=parse_strategy("adaptive-8", seed=0))
        resumed = agent.resume("killed-run")
        assert sorted(seen) == [4, 5, 6, 7]  # seeds 0-3 (waves 1 and 2) had finished before the kill
        assert [c["seed"] for c in resumed.candidates][:4] == [0, 1, 2, 3]
        assert resumed.answer == RIGHT and len(resumed.candidates) == 8
        trace = agent.store.get_run("killed-run")
        assert trace.run.status == "completed"
        assert json.loads(json.dumps(trace.model_dump(mode="json")))["run"]["id"] == "killed-run"
    finally:
        os.environ["SEASONED_HOME"] = old_home


def test_close_releases_the_checkpoint_connection(tmp_path):
    scripted.register("closing", fn=lambda messages, params: "Answer: 42")
    agent = Agent(gateway=Gateway("scripted/closing", ledger=Ledger()), strategy="single",
                  db_url=f"sqlite:///{tmp_path}/runs.db")
    result = agent.run("What is 40 + 2?")
    agent.close()
    assert agent.store.get_run(result.run_id).run.status == "completed"
    assert agent.run("again?").answer == "42"  # a new connection opens on demand
    agent.close()


def test_resume_after_an_interrupt_between_a_node_and_its_edge_finishes_the_run(tmp_path, monkeypatch):
    """Cancelled after ``retrieve`` wrote its update but before its edge sent the samples, LangGraph keeps
    the update and an error and no next node: a resume must run that step again, not end unfinished."""
    import asyncio

    from seasoned.graphs import solve

    cut = {"done": False}
    plan_samples = solve.plan_samples

    def cut_once(state, runtime):
        if not cut["done"]:
            cut["done"] = True
            raise asyncio.CancelledError  # as Ctrl-C landing in the edge
        return plan_samples(state, runtime)

    monkeypatch.setattr(solve, "plan_samples", cut_once)
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    scripted.register("cut", fn=lambda messages, params: f"Answer: {RIGHT}")
    agent = Agent(gateway=Gateway("scripted/cut", ledger=Ledger()), db_url=f"sqlite:///{tmp_path}/runs.db",
                  strategy="adaptive-4")
    with pytest.raises(BaseException):  # noqa: B017 - the cancellation, however the sync wrapper surfaces it
        list(agent.stream("What is 40 + 2?"))
    run_id = agent.store.list_runs()[0].id
    assert agent.store.get_run(run_id).run.status in ("interrupted", "failed")
    resumed = agent.resume(run_id)
    assert resumed.answer == RIGHT and resumed.verified is not None and resumed.candidates
    assert agent.store.get_run(run_id).run.status == "completed"
    agent.close()


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


async def test_a_checkpoint_write_waits_for_another_process_holding_the_database(tmp_path, monkeypatch):
    """Checkpoints are written from the event loop: while another process (a `seasoned run` beside a server)
    holds the checkpoint database's write lock, the run waits for it without freezing the loop, then
    finishes with every step checkpointed."""
    import asyncio

    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    scripted.register("patient", fn=lambda messages, params: f"Answer: {RIGHT}")
    agent = Agent(gateway=Gateway("scripted/patient", ledger=Ledger()), strategy="single",
                  db_url=f"sqlite:///{tmp_path}/runs.db")
    await agent.arun("warm-up")  # the checkpoint database exists
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLD_LOCK,
                                                  str(tmp_path / "checkpoints.sqlite"), "1.0",
                                                  stdout=asyncio.subprocess.PIPE)
    assert (await holder.stdout.readline()).strip() == b"locked"
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        result = await agent.arun("What is 40 + 2?")
    finally:
        ticker.cancel()
    assert await asyncio.wait_for(holder.wait(), 30) == 0
    assert result.answer == RIGHT and agent.store.get_run(result.run_id).run.status == "completed"
    assert ticks >= 5  # the loop went on while the run waited for the lock (held for a second)
    graph = await agent._checkpointed.get("solve")
    history = [state async for state in graph.aget_state_history({"configurable": {"thread_id": result.run_id}})]
    assert history[0].next == () and len(history) >= 4  # every step, up to the end
    await agent.aclose()
