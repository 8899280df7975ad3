"""Answers compared as answers: the extracted, normalised answer votes (not the reply text); a judge reply
that cannot be read is re-asked once (with the JSON schema where the provider takes one), then recorded as
"no verdict" with its cost shown; the judge's share of tokens is in the result, `seasoned run` and `runs show`."""

import pytest
from seasoned.agents import solver, verifier
from seasoned.envs import Verdict as EnvVerdict
from seasoned.graphs import Agent, Verdict, answer_is
from seasoned.models import scripted
from seasoned.runs import RunStore
from test_cli import seasoned

# The eight replies SmolLM2 gave to "What is 2+3?" in the issue: four say 5 in different words, two say 6 alike.
REPLIES = ["2 + 3 = 6", "Atelectator: 2 + 3 = 5", "2 + 3 = 5", "2 + 3 = 6",
           "To find the answer we can use logarithms.", "```", "2+3 = 5", "The final answer is 2+3 = 5."]


@pytest.mark.parametrize("text, answer", [
    ("2 + 3 = 6", "6"), ("Atelectator: 2 + 3 = 5", "5"), ("The final answer is 2+3 = 5.", "5"),
    ("The sum is 5.", "5"), ("Answer: x = -1.5", "-1.5"), ("Answer: 42.", "42."), ("Apollo 11", "Apollo 11"),
    ("Answer: y = 2x + 1", "y = 2x + 1"), ("so it costs $1.50", "so it costs $1.50"), ("it is $1.50", "$1.50"),
    ("The answer is 2, 3", "The answer is 2, 3"),
])
def test_a_reply_that_states_a_result_is_read_as_that_result(text, answer):
    assert solver.extract_answer(text) == answer


def test_a_result_at_the_end_of_a_huge_line_is_read_in_linear_time():
    assert solver.extract_answer("= " * 50_000 + "is 7") == "7"
    assert solver.extract_answer("1" * 100_000 + "x") == "1" * 99_999 + "x"


def test_votes_count_answers_not_reply_texts(tmp_path):
    scripted.register("phrasings", replies=list(REPLIES))
    agent = Agent("scripted/phrasings", strategy="self_consistency-8", db_url=f"sqlite:///{tmp_path}/r.db",
                  checkpoint=False, curate=False)
    result = agent.run("What is 2+3?")
    assert result.answer == "5"
    agent.close()


def judge_replies(text: str):
    """A model that answers tasks with REPLIES in turn and judges with ``text``."""
    answers = iter(REPLIES * 4)

    def reply(messages, params):
        return text if messages[0]["content"] == verifier.SYSTEM else next(answers)

    return reply


def test_an_unreadable_judge_is_recorded_as_no_verdict_and_its_cost_shown(tmp_path):
    model = scripted.register("mumbling-judge", fn=judge_replies("Hmm, let me think about that."))
    agent = Agent("scripted/mumbling-judge", strategy={"name": "best_of_n", "n": 4, "judge": True},
                  db_url=f"sqlite:///{tmp_path}/r.db", checkpoint=False, curate=False)
    result = agent.run("What is 2+3?")
    judged = [v for v in result.verdicts if v["verifier"].startswith("judge")]
    assert judged and all(v["passed"] is None and v["details"].startswith("no verdict") for v in judged)
    judge_calls = [seen for seen in model.seen if seen[0][0]["content"] == verifier.SYSTEM]
    assert len(judge_calls) == 2 * len(judged)  # one re-ask each, then no verdict
    assert result.judge["no_verdict"] == len(judged) and result.judge["verdicts"] == 0
    assert 0 < result.judge["tokens"] < result.spend.tokens
    trace = RunStore.open(f"sqlite:///{tmp_path}/r.db").get_run(result.run_id)
    stored = [v for c in trace.candidates for v in c.verdicts if v.verifier.startswith("judge")]
    assert len(stored) == len(judged) and all(v.passed is None for v in stored)
    agent.close()


def test_a_multi_stage_run_counts_its_subtasks_judgements(tmp_path):
    scripted.register("staged-mumble", fn=judge_replies("Hmm, let me think about that."))
    agent = Agent("scripted/staged-mumble", strategy={"name": "best_of_n", "n": 2, "judge": True}, plan=True,
                  db_url=f"sqlite:///{tmp_path}/r.db", checkpoint=False, curate=False)
    result = agent.run("First add 2 and 3. Then double it.", budget={"max_tokens": 6000})
    assert result.plan_source == "steps" and len(result.subtasks) == 2
    assert result.judge["no_verdict"] >= 2 and result.judge["verdicts"] == 0 and result.judge["tokens"] > 0
    agent.close()


def test_the_judge_asks_for_its_json_schema_where_the_provider_takes_one(tmp_path, monkeypatch):
    monkeypatch.setattr(verifier, "supports_response_schema", lambda model: True)
    model = scripted.register("schema-judge", fn=judge_replies('{"correct": true, "score": 0.9, "reason": "ok"}'))
    agent = Agent("scripted/schema-judge", strategy={"name": "best_of_n", "n": 2, "judge": True},
                  db_url=f"sqlite:///{tmp_path}/r.db", checkpoint=False, curate=False)
    result = agent.run("What is 2+3?")
    judge_params = [params for messages, params in model.seen if messages[0]["content"] == verifier.SYSTEM]
    assert judge_params and all(p["response_format"]["type"] == "json_schema" for p in judge_params)
    assert result.judge["verdicts"] == len(judge_params) and result.judge["no_verdict"] == 0
    agent.close()


def test_seasoned_run_and_runs_show_give_the_judges_share(tmp_path, monkeypatch, capsys):
    scripted.register("cli-mumble", fn=judge_replies("Hmm."))
    monkeypatch.setenv("SEASONED_DB_URL", f"sqlite:///{tmp_path}/cli.db")
    code, out, _ = seasoned(monkeypatch, capsys, "run", "What is 2+3?", "-m", "scripted/cli-mumble", "--strategy",
                            "self_consistency-4", "--json")
    assert code == 0 and '"judge": null' in out  # self_consistency without weights asks no judge
    code, out, _ = seasoned(monkeypatch, capsys, "run", "What is 2+3?", "-m", "scripted/cli-mumble", "--strategy",
                            "best_of_n-4")
    assert code == 0 and "no verdict: verifier: unusable output" in out
    line = next(x for x in out.splitlines() if "verified ·" in x)
    assert "judge " in line and "tokens (" in line and "no verdict" in line
    shown = seasoned(monkeypatch, capsys, "runs", "show", line.rsplit(" ", 1)[-1])[1]
    assert "judge" in shown and "of the run" in shown and "no verdict" in shown


def test_checkers_may_return_the_verdict_seasoned_graphs_exports():
    assert Verdict is EnvVerdict
    agent_checker = answer_is(42)
    assert agent_checker("40 plus 2.\nAnswer: 42.") and agent_checker("40 + 2 = 42")
    assert not agent_checker("Answer: 41") and not agent_checker("")


def test_a_judge_that_accepts_different_answers_gives_no_confidence(tmp_path):
    """A yes-saying judge (what a tiny model constrained to JSON does) cannot stop the run on its word."""
    answers = iter(["2 + 3 = 6", "2 + 3 = 5", "2 + 3 = 5", "2 + 3 = 6", "2+3 = 5", "The sum is 5."] * 3)

    def reply(messages, params):
        if messages[0]["content"] == verifier.SYSTEM:
            return '{"correct": true, "score": 1.0, "reason": "looks right"}'
        return next(answers)

    model = scripted.register("yes-judge", fn=reply)
    agent = Agent("scripted/yes-judge", strategy="adaptive-6", db_url=f"sqlite:///{tmp_path}/r.db",
                  checkpoint=False, curate=False)
    result = agent.run("What is 2+3?")
    assert len(result.candidates) == 6 and result.answer == "5"  # sampled on, then the votes decided
    assert sum(v["passed"] is True for v in result.verdicts) == 2  # the acceptances are still recorded
    assert sum(seen[0][0]["content"] == verifier.SYSTEM for seen in model.seen) == 2  # and it was not asked again
    agent.close()
