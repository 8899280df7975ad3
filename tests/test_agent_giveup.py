"""The give-up rule of single questions through ``Agent`` (``adaptive`` with a check, on by default).

A question is given up once one more sample is not worth its tokens: P(it is verified), the posterior predictive
from the agent's attempt records and this question's own failures, times what a verified answer is worth
(``solve_value`` tokens), below what the sample costs. The records live in the agent's attempt log (the run
database, or memory with ``record=False``), so the rule is the same with or without a memory bank."""

import random

import pytest
from seasoned.envs.sim import SimEnv
from seasoned.errors import SeasonedError
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.stopping import decide_wave
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger, scripted, sim
from seasoned.runs.attempts import AttemptLog

N = 8
BUDGET = 2000


def drawn(result) -> int:
    return sum(c["status"] == "ok" and c["kind"] != "cached" for c in result.candidates)


@pytest.fixture
def sim_agent(tmp_path):
    made = []

    def build(name: str, *, world: str | None = None, memory: bool = False, **agent_options):
        """An adaptive-8 agent on the sim world ``world`` (default ``name``: one hopeless kind)."""
        world = world or name
        if world not in made:
            sim.register(sim.SimWorld(world, kinds={"only": sim.SimKind(0.05, 20.0, 60)}, seed=11))
            made.append(world)
        bank = None
        if memory:
            bank = MemoryBank.open(f"sqlite:///{tmp_path}/{name}.db", namespace="q", chroma_path=str(tmp_path / name))
            made.append(bank)
        agent = Agent(gateway=Gateway(f"sim/{world}", ledger=Ledger()), memory=bank, namespace="q", record=False,
                      checkpoint=False, strategy=parse_strategy(f"adaptive-{N}", max_tokens=100, seed=0, wave_size=1),
                      **agent_options)
        return agent, SimEnv(sim.get(world), stages=1)

    yield build
    for thing in made:
        if isinstance(thing, str):
            sim.unregister(thing)
        else:
            thing.close()


def test_the_default_agent_never_gives_up_a_question_solvable_at_20_percent_before_four_samples():
    """A stream of questions each answered right by one sample in five: the default agent (adaptive-8,
    give-up on, default solve value, no memory) keeps sampling every unverified question until the budget
    has allowed at least four samples, while its attempt records grow."""
    rng = random.Random(5)

    def reply(messages, params):
        a, b = (int(x) for x in messages[-1]["content"].split("What is ")[1].split("?")[0].split(" + "))
        return f"I add them. Answer: {a + b if rng.random() < 0.2 else a + b + rng.choice((1, 10, -1))}"

    scripted.register("one-in-five", fn=reply)
    agent = Agent(gateway=Gateway("scripted/one-in-five", ledger=Ledger()), record=False, checkpoint=False)
    assert agent.strategy.name == "adaptive" and agent.give_up
    questions = [(a, b) for a in range(11, 19) for b in (23, 47, 68, 85, 92)]
    ruled = unsolved_within_four = 0
    for a, b in questions:
        result = agent.run(f"What is {a} + {b}?", budget={"max_tokens": BUDGET},
                           checker=lambda text, want=a + b: text.strip().endswith(f"Answer: {want}"))
        samples = drawn(result)
        assert all("p_next_wave" in d for d in result.decisions if d["action"] == "sample")  # the rule decided
        for d in result.decisions:  # what a decision says agrees with its numbers
            if "give up" in d["reason"]:
                assert d["p_next_wave"] * d["value"] <= d["cost"], d["reason"]
            if "continue" in d["reason"]:
                assert d["p_next_wave"] * d["value"] > d["cost"], d["reason"]
        ruled += any("p_next_wave" in d for d in result.decisions)
        if "give up" in result.stop_reason:
            assert samples >= 4, (a, b, samples, result.stop_reason)
        unsolved_within_four += not result.verified or samples > 4
    assert ruled >= len(questions) // 2 and unsolved_within_four >= 8  # the rule was asked, often late
    records = agent.attempts.records("default", agent.gateway.model, "general")
    assert len(records) == len(questions) and all(r["samples"] >= 1 for r in records)


def test_a_hopeless_kind_is_given_up_early_and_the_run_records_the_numbers(sim_agent):
    agent, env = sim_agent("giveup-hopeless")
    for task in env.tasks(n=12, seed=1):  # the records build up, through the agent itself
        agent.run(task, env=env, budget={"max_tokens": BUDGET})
    for task in env.tasks(n=5, seed=2):
        result = agent.run(task, env=env, budget={"max_tokens": BUDGET})
        assert result.spend.tokens <= BUDGET
        assert not result.verified and drawn(result) < N  # at most a few samples; none once it is clear
        last = result.decisions[-1]
        assert last["action"] == "select" and "give up" in last["reason"] and "give up" in result.stop_reason
        assert last["p_next_wave"] * last["value"] <= last["cost"]  # why it stopped, in numbers
        assert last["value"] == pytest.approx(agent.solve_value)
    cheaper, _ = sim_agent("giveup-hopeless-cheap", world="giveup-hopeless", attempts=agent.attempts, solve_value=500)
    result = cheaper.run(env.tasks(n=1, seed=3)[0], env=env, budget={"max_tokens": BUDGET})
    assert drawn(result) == 0 and result.answer is None  # at this value not even a first sample pays
    assert "after 0 failed sample(s)" in result.stop_reason and result.decisions[-1]["value"] == 500


def test_without_records_the_rule_is_cautious(sim_agent):
    """No attempt records yet: the posterior is the hyper-prior's, and a question is not given up early."""
    agent, env = sim_agent("giveup-fresh")
    result = agent.run(env.tasks(n=1, seed=1)[0], env=env, budget={"max_tokens": BUDGET})
    assert drawn(result) == N and result.stop_reason.startswith(f"adaptive: {N} samples drawn")
    assert all(d["action"] == "sample" for d in result.decisions[:-1])


def test_the_rule_is_the_same_with_or_without_memory_and_off_when_asked(sim_agent):
    plain, env = sim_agent("giveup-plain")
    with_memory, _ = sim_agent("giveup-memory", world="giveup-plain", memory=True, attempts=plain.attempts)
    off, _ = sim_agent("giveup-off", world="giveup-plain", give_up=False, attempts=plain.attempts)
    for task in env.tasks(n=4, seed=1):
        plain.run(task, env=env, budget={"max_tokens": BUDGET})
    task = env.tasks(n=1, seed=3)[0]
    rule = plain.context_for(task, env=env).stopping
    assert rule is not None and rule["records"] == 4
    assert with_memory.context_for(task, env=env).stopping == rule
    assert off.context_for(task, env=env).stopping is None
    result = off.run(task, env=env, budget={"max_tokens": BUDGET})
    assert drawn(result) == N and not any("p_next_wave" in d for d in result.decisions)


def test_attempts_are_kept_in_the_run_database(tmp_path):
    sim.register(sim.SimWorld("giveup-db", kinds={"only": sim.SimKind(2.0, 4.0, 40)}, seed=3))
    env = SimEnv(sim.get("giveup-db"), stages=1)
    url = f"sqlite:///{tmp_path}/runs.db"

    def agent() -> Agent:
        return Agent(gateway=Gateway("sim/giveup-db", ledger=Ledger()), db_url=url, checkpoint=False,
                     strategy=parse_strategy("adaptive-4", max_tokens=100, seed=0))

    first = agent()
    for task in env.tasks(n=3, seed=1):
        first.run(task, env=env, budget={"max_tokens": BUDGET})
    first.close()
    second = agent()
    records = second.attempts.records("default", "sim/giveup-db", "sim/d1")  # the environment and its level
    assert len(records) == 3 and all(r["samples"] >= 1 and r["spent"]["tokens"] > 0 for r in records)
    assert second.context_for(env.tasks(n=1, seed=2)[0], env=env).stopping["records"] == 3
    second.close()
    sim.unregister("giveup-db")


def test_the_solve_value_sets_how_long_a_question_is_worth_sampling(monkeypatch):
    log = AttemptLog()
    for index in range(40):  # a kind solved by about one question in five, usually late
        log.record("ns", "scripted/x", "general", samples=N if index % 5 else 3, successes=0 if index % 5 else 1,
                   tokens=N * 80)
    given_up_after = {}
    for value in (300, 2000, 20000):
        agent = Agent(gateway=Gateway("scripted/x", ledger=Ledger()), record=False, checkpoint=False,
                      attempts=log, namespace="ns", solve_value=value, strategy=parse_strategy("adaptive-8"))
        rule = agent.context_for("a question", checker=lambda text: False).stopping
        given_up_after[value] = next((f for f in range(N) if not decide_wave(rule, f, tokens_per_sample=80).go), N)
    assert given_up_after[300] < given_up_after[2000] <= given_up_after[20000]
    with pytest.raises(SeasonedError, match="solve_value"):
        Agent(gateway=Gateway("scripted/x", ledger=Ledger()), record=False, checkpoint=False, solve_value=0)
    monkeypatch.setenv("SEASONED_SOLVE_VALUE", "750")
    assert Agent(gateway=Gateway("scripted/x", ledger=Ledger()), record=False, checkpoint=False).solve_value == 750


def test_without_a_check_no_record_and_no_rule(sim_agent):
    agent, env = sim_agent("giveup-nocheck")
    task = env.tasks(n=1, seed=1)[0]
    for _ in range(3):
        agent.run(task.prompt, budget={"max_tokens": BUDGET})  # a bare question: no checker, success unknown
    assert agent.attempts.records("q", agent.gateway.model, "general") == []
    assert agent.context_for(task.prompt).stopping is None


def test_agreement_on_a_rejected_answer_counts_as_far_as_the_records_show_it_predicts_failure():
    """Records in which questions whose samples kept repeating a rejected answer were never solved, and
    questions with varied wrong answers were: a question stuck on one wrong answer is given up sooner than
    one whose wrong answers vary, and the decision says how often they repeated."""
    log = AttemptLog()
    for _ in range(30):
        log.record("default", "scripted/stuck-or-not", "general", samples=8, successes=0, tokens=8 * 40,
                   pattern="0,0,0,0,0,0,0,0")
        log.record("default", "scripted/stuck-or-not", "general", samples=5, successes=1, tokens=5 * 40,
                   pattern="0,1,2,3,+")
    answers = iter(range(100, 10_000))
    varied = {"on": False}

    def reply(messages, params):
        return f"Let me think. Answer: {next(answers) if varied['on'] else 13}"

    scripted.register("stuck-or-not", fn=reply)
    agent = Agent(gateway=Gateway("scripted/stuck-or-not", ledger=Ledger()), record=False, checkpoint=False,
                  attempts=log, strategy=parse_strategy("adaptive-16", seed=0))
    stuck = agent.run("What is 40 + 2?", checker=lambda text: False, budget={"max_tokens": BUDGET})
    varied["on"] = True
    moving = agent.run("What is 40 + 2?", checker=lambda text: False, budget={"max_tokens": BUDGET})
    assert "give up" in stuck.stop_reason and "repeated a rejected answer" in stuck.stop_reason
    assert stuck.decisions[-1]["repeats"] == 1.0
    assert drawn(stuck) < drawn(moving)


def test_a_run_the_budget_ends_says_so_whatever_the_rule_wanted():
    """The rule wanted another wave but the budget could not pay for a sample: the stop reason says the
    budget ended it (not the rule's 'continue')."""
    scripted.register("never-right", fn=lambda messages, params: "Let me think. Answer: 7")
    agent = Agent(gateway=Gateway("scripted/never-right", ledger=Ledger()), record=False, checkpoint=False,
                  solve_value=10**6)
    for budget in range(60, 400, 17):
        result = agent.run("What is 40 + 2?", checker=lambda text: False, budget={"max_tokens": budget})
        assert result.spend.tokens <= budget
        assert result.stop_reason.startswith(("budget spent", f"adaptive: {agent.strategy.n} samples drawn")), (
            budget, result.stop_reason)
