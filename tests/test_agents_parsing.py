"""Reading real model output: JSON in prose and fences, trailing text, missing fields, re-ask, typed failure."""

import pytest
from pydantic import BaseModel

from seasoned.agents.base import ask_structured
from seasoned.agents.critic import critique
from seasoned.agents.parsing import ParseError, extract_json, parse_model
from seasoned.agents.solver import build_messages, extract_answer, normalize_answer
from seasoned.agents.verifier import Judgement, judge
from seasoned.models import Gateway, Ledger, scripted


class Plan(BaseModel):
    steps: list[str] = []
    difficulty: float = 0.5


@pytest.mark.parametrize("text", [
    '{"steps": ["a", "b"], "difficulty": 0.2}',
    'Sure! Here is the plan:\n```json\n{"steps": ["a", "b"], "difficulty": 0.2}\n```\nHope it helps.',
    'The plan {"steps": ["a", "b"], "difficulty": 0.2} and then some trailing words }',
    "{'steps': ['a', 'b'], 'difficulty': 0.2,}",
])
def test_json_is_found_in_prose_fences_and_sloppy_syntax(text):
    assert parse_model(text, Plan) == Plan(steps=["a", "b"], difficulty=0.2)


def test_missing_fields_take_defaults_and_unknown_fields_are_ignored():
    assert parse_model('{"steps": ["x"], "mood": "happy"}', Plan) == Plan(steps=["x"], difficulty=0.5)


def test_key_value_lines_are_read_when_there_is_no_json():
    judgement = parse_model("correct: yes\nscore: 80%\nreason: adds up", Judgement)
    assert judgement.correct and judgement.score == 0.8


@pytest.mark.parametrize("text", ["", "no structure here at all", '{"steps": "not a list"}'])
def test_unusable_text_is_a_parse_error(text):
    with pytest.raises(ParseError):
        parse_model(text, Plan)


def test_braces_inside_strings_do_not_confuse_extraction():
    assert extract_json('x {"a": "a } inside", "b": 1} y') == {"a": "a } inside", "b": 1}


async def test_one_reask_with_the_parse_error_then_success():
    model = scripted.register("reask", replies=["I refuse to use JSON", '{"steps": ["ok"]}'])
    outcome = await ask_structured(Gateway("scripted/reask", ledger=Ledger()),
                                   [{"role": "user", "content": "plan"}], Plan, role="planner")
    assert outcome.ok and outcome.value.steps == ["ok"]
    assert len(outcome.completions) == 2
    reask_prompt = model.seen[1][0][-1]["content"]
    assert "could not be used" in reask_prompt and "JSON" in reask_prompt


async def test_unusable_twice_is_a_typed_failure_not_an_exception():
    scripted.register("hopeless", fn=lambda messages, params: "}}}{{{")
    outcome = await ask_structured(Gateway("scripted/hopeless", ledger=Ledger()),
                                   [{"role": "user", "content": "plan"}], Plan, role="planner")
    assert not outcome.ok and "unusable output" in outcome.failure
    assert outcome.tokens > 0


async def test_provider_failure_is_a_typed_failure():
    scripted.register("broken", fn=lambda messages, params: scripted.bad_request())
    outcome = await ask_structured(Gateway("scripted/broken", ledger=Ledger()),
                                   [{"role": "user", "content": "plan"}], Plan, role="planner")
    assert not outcome.ok and "model call failed" in outcome.failure


async def test_judge_salvages_plain_words_and_clamps_scores():
    scripted.register("judge-words", fn=lambda messages, params: "No, 40 + 2 is 42, not 41.")
    outcome = await judge(Gateway("scripted/judge-words", ledger=Ledger()), "What is 40+2?", "41")
    assert outcome.ok and outcome.value.correct is False
    assert Judgement(score="150").score == 1.0 and Judgement(score="abc").score == 0.5
    assert Judgement(score="nan").score == 0.5 and Judgement(score="-inf").score == 0.5  # model output: untrusted


async def test_critic_accepts_prose():
    scripted.register("critic-prose", fn=lambda messages, params: "You forgot to carry the one.")
    outcome = await critique(Gateway("scripted/critic-prose", ledger=Ledger()), "What is 19+23?", "32")
    assert outcome.ok and "carry" in outcome.value.as_text()


@pytest.mark.parametrize("text, answer", [
    ("Let me think... Answer: 42", "42"),
    ("so the final answer is: **17**", "17"),
    ("We get \\boxed{3/4} in the end", "3/4"),
    ("first line\nlast line", "last line"),
    ("   ", None),
])
def test_answer_extraction(text, answer):
    assert extract_answer(text) == answer


def test_answer_normalization_for_votes():
    assert normalize_answer(" 1,000.0 ") == normalize_answer("1000") == "1000"
    assert normalize_answer("Paris.") == normalize_answer("paris")


def test_revision_prompt_carries_previous_attempt_and_critique():
    messages = build_messages("What is 2+2?", context="- add carefully", previous="Answer: 5", critique="off by one")
    text = messages[-1]["content"]
    assert "Answer: 5" in text and "off by one" in text
    assert "add carefully" in messages[0]["content"]  # distilled notes travel in the system message
