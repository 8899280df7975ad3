"""The learned give-up rule on single questions through ``Agent``: memory on, ``adaptive``, an environment check.

Each checked single-stage run leaves an allocation record (samples drawn, success); once a kind has enough of
them, the next question of that kind is sampled only while one more sample pays (``graphs.stopping``)."""

import pytest
from seasoned.envs.sim import SimEnv
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.stopping import MIN_RECORDS
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger, sim

N = 8
BUDGET = 2000


@pytest.fixture
def make(tmp_path):
    banks = []

    def build(name: str, **kinds):
        world = sim.register(sim.SimWorld(name, kinds={k: sim.SimKind(*v) for k, v in kinds.items()}, seed=11))
        bank = MemoryBank.open(f"sqlite:///{tmp_path}/{name}.db", namespace="q", chroma_path=str(tmp_path / name))
        banks.append((bank, name))
        agent = Agent(gateway=Gateway(f"sim/{name}", ledger=Ledger()), memory=bank, namespace="q", record=False,
                      checkpoint=False, strategy=parse_strategy(f"adaptive-{N}", max_tokens=100, seed=0, wave_size=1))
        return agent, SimEnv(world, stages=1), bank

    yield build
    for bank, name in banks:
        bank.close()
        sim.unregister(name)


def drawn(result) -> int:
    return sum(c["status"] == "ok" and c["kind"] != "cached" for c in result.candidates)


def warm_up(agent, env, bank, n: int) -> None:
    tasks = env.tasks(n=n, seed=1)
    assert agent.context_for(tasks[0], env=env).stopping is None  # no records yet: the rule is off
    for task in tasks:
        result = agent.run(task, env=env, budget={"max_tokens": BUDGET})
        assert result.spend.tokens <= BUDGET
    records = bank.allocations(namespace="q")
    assert len(records) == n  # one per checked run, with what the prior needs
    assert all(r["subtask_kind"] == "sim" and r["samples"] >= 1 and r["budget"] == {"tokens": BUDGET}
               and r["model"] == agent.gateway.model for r in records)


def test_a_hopeless_kind_is_given_up_early_and_the_run_says_why(make):
    agent, env, bank = make("agent-hopeless", hopeless=(0.05, 20.0, 60))
    warm_up(agent, env, bank, MIN_RECORDS + 4)
    assert agent.context_for(env.tasks(n=1, seed=2)[0], env=env).stopping is not None
    for task in env.tasks(n=5, seed=2):
        result = agent.run(task, env=env, budget={"max_tokens": BUDGET})
        assert result.spend.tokens <= BUDGET
        assert not result.verified and 1 <= drawn(result) < N
        last = result.decisions[-1]
        assert last["action"] == "select" and "give up" in last["reason"] and "/token" in last["reason"]
        assert last["price"] > 0 and last["gain_per_token"] <= last["price"]
        assert "give up" in result.stop_reason


def test_an_easy_kind_is_not_given_up_prematurely(make):
    agent, env, bank = make("agent-easy", easy=(3.0, 2.0, 40))
    warm_up(agent, env, bank, MIN_RECORDS + 4)
    assert agent.context_for(env.tasks(n=1, seed=2)[0], env=env).stopping is not None
    solved = 0
    for task in env.tasks(n=12, seed=2):
        result = agent.run(task, env=env, budget={"max_tokens": BUDGET})
        assert result.spend.tokens <= BUDGET
        assert "give up" not in result.stop_reason
        assert result.verified or drawn(result) == N  # every miss drew all n samples
        solved += result.verified
        assert all("continue" in d["reason"] for d in result.decisions if d.get("action") == "sample"
                   and "price" in d)
    assert solved >= 9


def test_without_a_check_no_record_and_no_rule(make):
    agent, env, bank = make("agent-nocheck", easy=(3.0, 2.0, 40))
    task = env.tasks(n=1, seed=1)[0]
    for _ in range(MIN_RECORDS + 1):
        agent.run(task.prompt, budget={"max_tokens": BUDGET})  # a bare question: no checker, success unknown
    assert bank.allocations(namespace="q") == []
    assert agent.context_for(task, env=env, strategy=parse_strategy("best_of_n-4")).stopping is None
