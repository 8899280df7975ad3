"""The calibrated simulator (sim/ provider), the learned give-up rule and the oracle."""

import random

import pytest
from seasoned.benchmarks.simulated import known, run_stream, warmup_records
from seasoned.envs.sim import SimEnv
from seasoned.graphs import Agent, parse_strategy
from seasoned.graphs.allocation import DifficultyWeighted, Learned, Uniform
from seasoned.graphs.stopping import (
    KindPrior,
    decide_wave,
    fit_posterior,
    oracle,
    oracle_plan,
    price_for_rate,
    priors_from_records,
    spec,
    stage_tokens,
)
from seasoned.models import Gateway, Ledger, ModelConfigError, sim


def world(name, **kinds):
    return sim.register(sim.SimWorld(name, kinds={k: sim.SimKind(*v) for k, v in kinds.items()}, seed=7))


# --- the provider ------------------------------------------------------------------------------------------
def test_sim_provider_replies_right_with_the_latent_probability_and_the_kind_tokens():
    w = world("calib", steep=(2.0, 4.0, 50))
    gateway = Gateway("sim/calib", ledger=Ledger())
    tag = sim.task_tag("t1", "steep")
    right = 0
    for seed in range(200):
        reply = gateway.complete(f"{tag} Solve it.", max_tokens=100, seed=seed)
        assert reply.completion_tokens == 50
        right += reply.text.endswith(f"Answer: {w.answer('t1', 'steep')}")
    assert abs(right / 200 - w.p("t1", "steep")) < 0.1
    again = gateway.complete(f"{tag} Solve it.", max_tokens=100, seed=3).text
    assert again == gateway.complete(f"{tag} Solve it.", max_tokens=100, seed=3).text  # deterministic


def test_sim_provider_cuts_replies_at_max_tokens_and_names_unknown_worlds_and_kinds():
    world("cut", easy=(8.0, 2.0, 80))
    reply = Gateway("sim/cut", ledger=Ledger()).complete(f"{sim.task_tag('t', 'easy')} go", max_tokens=20)
    assert reply.completion_tokens == 20 and "Answer" not in reply.text
    with pytest.raises(ModelConfigError, match="not registered"):
        Gateway("sim/nowhere", ledger=Ledger()).complete("hi", max_tokens=5)
    with pytest.raises(ModelConfigError, match="no kind"):
        sim.get("cut").p("t", "missing")
    with pytest.raises(ModelConfigError):
        sim.SimKind(0, 1, 10)


# --- the Bayes rule and the oracle ---------------------------------------------------------------------------
def test_fit_posterior_recovers_the_kind_mean_from_censored_records():
    rng = random.Random(1)
    observations = []
    for _ in range(400):
        p = rng.betavariate(2, 6)
        n = next((k for k in range(1, 9) if rng.random() < p), None)
        observations.append((n, True) if n else (8, False))
    prior = fit_posterior(observations, tokens=100)
    assert abs(prior.mean - 0.25) < 0.05


def test_give_up_stops_on_a_hopeless_kind_and_not_on_a_steep_one():
    hopeless, steep = KindPrior(0.05, 20, 100), KindPrior(2, 4, 100)
    mix = [([[(None, hopeless)]], 1.0), ([[(None, steep)]], 1.0)]
    price = price_for_rate(mix, 150)  # tokens per task: not enough to sample every task to the end
    assert not decide_wave(spec(hopeless, price), 0).go
    assert "give up" in decide_wave(spec(hopeless, price), 0).reason(0)
    assert all(decide_wave(spec(steep, price), f).go for f in range(3))
    # the posterior learns from failures: a steep task that failed many times is given up eventually
    assert not decide_wave(spec(steep, price), 15).go


def test_oracle_attempts_the_best_tasks_first_and_respects_its_budget():
    from seasoned.graphs.stopping import KnownStage

    tasks = [[KnownStage(0.9, 100)], [KnownStage(0.0, 100)], [KnownStage(0.3, 100)]]
    success, tokens = oracle(tasks, rate=40, max_samples=4)
    assert tokens == pytest.approx(40)
    first_s, first_t = 1 - 0.1 ** 4, 100 * (1 - 0.1 ** 4) / 0.9  # the best task, attempted fully
    third_s, third_t = 1 - 0.7 ** 4, 100 * (1 - 0.7 ** 4) / 0.3  # then what is left, fractionally
    assert success == pytest.approx((first_s + third_s * (120 - first_t) / third_t) / 3)


def test_learned_allocation_converges_toward_the_oracle_split_on_two_kinds():
    """Two kinds with (nearly) known probabilities: 'good' p ~ 0.5, 'bad' p ~ 0.01, two stages per task. The
    oracle's split of tokens between the kinds is computed from the latent values; with enough warm-up
    records learned's split comes close to it (a thin warm-up leaves it exploring, far from it)."""
    w = world("split", good=(400.0, 400.0, 60), bad=(5.0, 495.0, 60))
    env = SimEnv(w, stages=(2, 2))
    tasks = env.tasks(n=300, seed=2)
    budget = 200
    stages = [known(env, t) for t in tasks]
    shares = oracle_plan(stages, budget, max_samples=16)
    oracle_bad = oracle_all = 0.0
    for task, share, known_stages in zip(tasks, shares, stages):
        for kind, tokens in zip(task.metadata["kinds"], stage_tokens(known_stages, 16)):
            oracle_all += share * tokens
            oracle_bad += share * tokens * (kind == "bad")
    oracle_share = oracle_bad / oracle_all
    oracle_success, _ = oracle(stages, budget, max_samples=16)

    def split(records):
        outcomes = run_stream(env, tasks, Learned(lambda: records, max_samples=16), budget)
        bad = sum(r["spent"]["tokens"] for o in outcomes for r in o.records if r["subtask_kind"] == "bad")
        total = sum(o.tokens for o in outcomes)
        assert total <= budget * len(tasks)
        return bad / max(total, 1), sum(o.success for o in outcomes) / len(outcomes)

    share_few, _ = split(warmup_records(env, env.tasks(n=3, seed=1), 16))
    share_many, success_many = split(warmup_records(env, env.tasks(n=200, seed=1), 16))
    assert abs(share_many - oracle_share) < 0.05
    assert abs(share_many - oracle_share) < abs(share_few - oracle_share)
    assert success_many >= 0.9 * oracle_success


# --- through the real graphs -----------------------------------------------------------------------------------
def agent(world_name, allocation, seed=0):
    return Agent(gateway=Gateway(f"sim/{world_name}", ledger=Ledger(), max_concurrency=16), record=False,
                 checkpoint=False, allocation=allocation, curate=False,
                 strategy=parse_strategy("adaptive-16", max_tokens=200, seed=seed, wave_size=1))


def test_graph_give_up_on_hopeless_stage_and_persistence_on_steep_stage_are_recorded():
    w = world("giveup", steep=(2.0, 4.0, 60), hopeless=(0.05, 20.0, 60))
    env = SimEnv(w, stages=(2, 2), weights={"steep": 1.0, "hopeless": 1.0})
    records = warmup_records(env, env.tasks(n=150, seed=1), 16)
    assert {k for k, m in priors_from_records(records) if m is None} == {"steep", "hopeless"}
    a = agent("giveup", Learned(lambda: records, rate=250))
    seen_hopeless = seen_steep = solved_steep = 0
    for task in env.tasks(n=30, seed=3):
        result = a.run(task, env=env, budget={"max_tokens": 3000})
        kinds = task.metadata["kinds"]
        allocations = {k: v for d in result.decisions if d["action"] == "allocate"
                       for k, v in d["allocations"].items()}
        if "hopeless" in kinds:  # the whole task is given up before (or right after) its first sample
            seen_hopeless += 1
            assert result.spend.tokens <= 100
            assert any("give-up" in a["reason"] for a in allocations.values())
        else:  # steep: sampled, with the give-up point and the price that set it in the record
            seen_steep += 1
            assert allocations["s1"]["samples"] >= 2 and "price" in allocations["s1"]["reason"]
            first = result.subtasks[0]["result"]
            assert first["samples"] >= 1
            if not first["verified"]:
                assert "give up" in first["stop_reason"] and "its cost" in first["stop_reason"]
            solved_steep += bool(result.subtasks[-1]["result"] and result.subtasks[-1]["result"]["verified"])
    assert seen_hopeless and seen_steep and solved_steep


@pytest.mark.parametrize("budget", [60, 150, 400])
def test_no_policy_ever_exceeds_a_budget(budget):
    w = world("caps", easy=(8.0, 2.0, 40), steep=(1.5, 4.0, 90), hopeless=(0.05, 20.0, 120))
    env = SimEnv(w, stages=(1, 3))
    records = warmup_records(env, env.tasks(n=60, seed=1), 16)
    tasks = env.tasks(n=12, seed=5)
    for policy in (Uniform(), DifficultyWeighted(), Learned(lambda: records), Learned(lambda: records, rate=40)):
        a = agent("caps", policy)
        for task in tasks:
            result = a.run(task, env=env, budget={"max_tokens": budget})
            assert result.spend.tokens <= budget, (policy.name, task.id)
        outcomes = run_stream(env, tasks, policy, budget)  # pooled: savings carried on, never borrowed
        spent = 0
        for index, outcome in enumerate(outcomes):
            spent += outcome.tokens
            assert spent <= budget * (index + 1)
