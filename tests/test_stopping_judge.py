"""Paying for the judge only when it pays: identical answers judged once, no judge when agreement already
says more than it could, structured output where the provider supports it (scripted provider)."""


from seasoned.agents import verifier
from seasoned.graphs import Agent, parse_strategy
from seasoned.models import Gateway, Ledger, scripted

JUDGE = '{"correct": true, "score": 0.9, "reason": "fine"}'


def solver(answers: dict[int, str], calls: list):
    def reply(messages, params):
        prompt = messages[-1]["content"]
        if "Proposed answer" in prompt:
            calls.append(prompt)
            return JUDGE
        return f"Let me think. Answer: {answers.get(params.get('seed'), '7')}"

    return reply


def agent(name: str, reply, strategy: str) -> Agent:
    scripted.register(name, fn=reply)
    return Agent(gateway=Gateway(f"scripted/{name}", ledger=Ledger()), record=False, checkpoint=False,
                 strategy=parse_strategy(strategy, seed=0))


def test_best_of_n_judges_each_distinct_answer_once():
    calls: list = []
    a = agent("dedup", solver({0: "42", 1: "42", 2: "9", 3: "42", 4: "9", 5: "9", 6: "42", 7: "9"}, calls),
              "best_of_n-8")
    result = a.run("What is 40 + 2?")
    assert len(calls) == 2  # two distinct answers, not eight candidates
    assert {"42", "9"} == {c.split("Proposed answer:")[1].split("Answer:")[-1].split()[0] for c in calls}
    assert result.answer in {"42", "9"}


def test_best_of_n_does_not_judge_when_every_sample_agrees():
    calls: list = []
    a = agent("agree", solver({}, calls), "best_of_n-8")  # every sample answers 7
    result = a.run("What is 3 + 4?")
    assert calls == []
    assert result.answer == "7"


def test_a_forced_judge_still_judges_each_distinct_answer_once():
    calls: list = []
    a = agent("forced", solver({0: "42", 1: "42"}, calls), "best_of_n-4")
    a.strategy = a.strategy.model_copy(update={"judge": True})
    a.run("What is 40 + 2?")
    assert len(calls) == 2  # 42 and 7


async def test_judge_asks_for_a_json_schema_where_the_provider_supports_it(monkeypatch):
    seen = []

    def reply(messages, params):
        seen.append(params.get("response_format"))
        return JUDGE

    scripted.register("schema-judge", fn=reply)
    gateway = Gateway("scripted/schema-judge", ledger=Ledger())
    monkeypatch.setattr(verifier, "supports_response_schema", lambda model: True)
    outcome = await verifier.judge(gateway, "What is 40 + 2?", "Answer: 42")
    assert outcome.ok and outcome.value.correct and len(outcome.completions) == 1
    assert seen[-1]["type"] == "json_schema" and "correct" in seen[-1]["json_schema"]["schema"]["properties"]
    monkeypatch.setattr(verifier, "supports_response_schema", lambda model: False)
    outcome = await verifier.judge(gateway, "What is 40 + 2?", "Answer: 42")
    assert outcome.ok and seen[-1] is None  # today's parser path: no schema sent


async def test_a_judge_reply_that_does_not_parse_is_re_asked_once_with_the_schema(monkeypatch):
    replies = iter(["not json", JUDGE, "not json", "still not json", JUDGE])
    seen = []

    def reply(messages, params):
        seen.append(params.get("response_format"))
        return next(replies)

    scripted.register("schema-bad", fn=reply)
    monkeypatch.setattr(verifier, "supports_response_schema", lambda model: True)
    gateway = Gateway("scripted/schema-bad", ledger=Ledger())
    outcome = await verifier.judge(gateway, "task", "Answer: 1")
    assert outcome.ok and outcome.value.correct and len(outcome.completions) == 2  # the re-ask got it
    assert all(s and s["type"] == "json_schema" for s in seen)
    outcome = await verifier.judge(gateway, "task", "Answer: 1")
    assert not outcome.ok and "unusable output" in outcome.failure and len(outcome.completions) == 2
