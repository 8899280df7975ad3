"""What the records say about a kind of question (graphs.success_model) and the simulator calibrated from them."""

import random

import pytest
from seasoned.graphs.stopping import decide_wave, give_up_rule
from seasoned.graphs.success_model import fit_agreement, fit_posterior, repeat_share, sample_pattern
from seasoned.models import sim


def adaptive_records(rates, n=8, seed=0):
    """Attempt records of questions with these success rates, sampled until verified or n drawn."""
    rng = random.Random(seed)
    records = []
    for p in rates:
        drawn = next((k for k in range(1, n + 1) if rng.random() < p), None)
        records.append({"samples": drawn or n, "successes": int(drawn is not None), "spent": {"tokens": 80 * (drawn or n)}})
    return records


def test_thirty_records_do_not_make_a_solvable_kind_hopeless_after_one_sample():
    """The issue's case: 30 records, a third solved. A point estimate can read them as "most questions are
    hopeless"; the posterior keeps its uncertainty, so one failed sample leaves a chance worth the next one."""
    records = adaptive_records([0.05] * 30, seed=3)
    assert 5 <= sum(r["successes"] for r in records) <= 15
    rule = give_up_rule(records, 4000, max_samples=8)
    for failures in range(4):
        assert decide_wave(rule, failures, tokens_per_sample=80).go
    posterior = fit_posterior([(r["samples"], r["successes"]) for r in records], 80)
    assert posterior.wave_success(1, 1) > 0.5 * posterior.wave_success(0, 1)


def test_records_that_show_hopeless_and_easy_questions_make_failures_telling():
    """Many records of a kind whose questions are either easy or hopeless: after a couple of failures the
    question is probably a hopeless one, and the predictive falls far below the kind's mean."""
    records = adaptive_records([0.9] * 300 + [0.0] * 300, seed=1)
    posterior = fit_posterior([(r["samples"], r["successes"]) for r in records], 80)
    assert posterior.wave_success(0, 1) == pytest.approx(0.45, abs=0.05)
    assert posterior.wave_success(2, 1) < 0.05
    low, high = posterior.spread()
    assert high - low < 0.1  # 600 records: the kind's mean is known


def test_few_records_leave_the_mean_uncertain_and_more_records_narrow_it():
    few = fit_posterior([(r["samples"], r["successes"]) for r in adaptive_records([0.3] * 5)], 80)
    many = fit_posterior([(r["samples"], r["successes"]) for r in adaptive_records([0.3] * 500)], 80)
    assert (few.spread()[1] - few.spread()[0]) > 3 * (many.spread()[1] - many.spread()[0])
    assert many.mean == pytest.approx(0.3, abs=0.04)


def test_the_rule_gives_up_exactly_when_the_chance_times_the_value_is_below_the_cost():
    rule = give_up_rule(adaptive_records([0.2] * 100, seed=2), 1000, max_samples=8)
    for failures in range(1, 8):
        for cost in (50, 150, 400):
            wave = decide_wave(rule, failures, tokens_per_sample=cost)
            assert wave.go == (wave.success * 1000 > cost)
            assert wave.value == pytest.approx(1000) and wave.tokens == cost


def test_agreement_counts_only_as_far_as_the_records_show_it():
    assert sample_pattern(["7", "9", "7", None, "+"][:4], [False] * 4) == "0,1,0,x"
    assert sample_pattern(["7", "42"], [False, True]) == "0,+"
    assert repeat_share(["0", "0", "0"]) == 1.0 and repeat_share(["0", "1", "x", "x"]) == 0.0
    stuck = [{"samples": 8, "successes": 0, "pattern": "0,0,0,0,0,0,0,0"}] * 40
    varied = [{"samples": 5, "successes": 1, "pattern": "0,1,2,3,+"}] * 40
    records = stuck + varied
    posterior = fit_posterior([(r["samples"], r["successes"]) for r in records], 80)
    telling = fit_agreement(records, posterior)
    assert sum(w * beta for w, beta in telling) < -1.5  # repeats predicted failure
    silent = [{"samples": 8, "successes": 0, "pattern": "0,1,2,3,4,5,6,7"}] * 40 + varied
    neutral = fit_agreement(silent, fit_posterior([(r["samples"], r["successes"]) for r in silent], 80))
    assert abs(sum(w * beta for w, beta in neutral)) < 0.5  # no repeats seen: the N(0, 1) prior, barely moved


def test_a_calibrated_sim_kind_matches_its_stream_and_the_mixed_world_does_not():
    rng = random.Random(7)
    rates = [rng.betavariate(0.6, 5.0) for _ in range(60)]  # a real model's questions, say
    counts = [(8, sum(rng.random() < p for _ in range(8))) for p in rates]
    posterior = fit_posterior(counts, 70)
    calibrated = sim.SimKind.mixture(posterior.components, 50)
    assert calibrated.mean == pytest.approx(posterior.mean)
    assert sum(calibrated.successes_pmf(8)) == pytest.approx(1.0)
    assert sim.calibration_check(calibrated, counts, replicates=300).matches
    mixed = sim.calibration_check(sim.pooled_kind(sim.mixed_world()), counts, replicates=300)
    assert not mixed.matches and "does NOT match" in mixed.describe()


def test_a_mixture_kind_draws_its_tasks_rates_from_its_components():
    kind = sim.SimKind.mixture([(0.5, 200.0, 1.0), (0.5, 1.0, 200.0)], 40)  # half near 1, half near 0
    rng = random.Random(0)
    rates = [kind.draw_p(rng) for _ in range(400)]
    assert 150 < sum(p > 0.5 for p in rates) < 250 and all(p < 0.05 or p > 0.95 for p in rates)
    with pytest.raises(sim.ModelConfigError):
        sim.SimKind(0.5, 0.5, 10, ((0.7, 1.0, 1.0),))  # weights must sum to 1


def test_at_the_rules_horizon_the_reason_says_so_and_not_give_up():
    rule = give_up_rule(adaptive_records([0.3] * 50), 4000, max_samples=4)
    last = decide_wave(rule, 4, tokens_per_sample=80)
    assert not last.go and last.capped and "give up" not in last.reason(4)
    assert "give up" not in decide_wave(rule, 3, tokens_per_sample=80).reason(3)  # 0.2 x 4000 > 80: continue
