"""Structured actions and every turn in the trace: where the provider takes a JSON schema, the actor asks
for its action constrained to the tools' action schema; each model turn of an episode (reply, action or why
none, observation) reaches on_turn, is recorded with its candidate id (under best_of_n too), printed live by
`seasoned run` and shown by `seasoned runs show`."""

import json

import pytest
from seasoned.agents import actor
from seasoned.agents.actor import action_format, run_actor
from seasoned.graphs import Agent
from seasoned.models import Gateway, scripted
from seasoned.models.tokens import count_text_tokens
from test_actor import CounterEnv, CounterSession
from test_cli import seasoned


def test_the_action_schema_ties_each_tool_name_to_its_own_arguments():
    tools = CounterSession(None).tools
    schema = action_format(tools)["json_schema"]["schema"]
    names = [alt["properties"]["action"]["const"] for alt in schema["anyOf"]]
    assert names == ["add", "submit"]
    add = schema["anyOf"][0]["properties"]["arguments"]
    assert add["properties"] == {"k": {"type": "integer"}} and add["required"] == ["k"]
    assert schema["anyOf"][1]["properties"]["arguments"]["properties"] == {}


def test_the_action_grammar_keeps_strings_json_no_raw_control_characters():
    """A raw newline inside a string is not JSON: the embedded model ran on past one until max_tokens."""
    from seasoned.envs.swe.env import TOOLS
    from seasoned.models.grammar import grammar_of

    [char] = [line for line in grammar_of(action_format(TOOLS)).splitlines() if line.startswith("char ::=")]
    assert char.startswith(r'char ::= [^"\\\x7F\x00-\x1F] |')


async def test_json_actions_where_the_provider_takes_a_schema(monkeypatch):
    monkeypatch.setattr(actor, "supports_response_schema", lambda model: True)
    replies = iter(['{"action": "add", "arguments": {"k": 3}}', '{"action": "add", "arguments": {"k": 2}}',
                    '{"action": "submit", "arguments": {}}'])
    model = scripted.register("json-actor", fn=lambda messages, params: next(replies))
    turns = []
    attempt = await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/json-actor"),
                              max_steps=10, on_turn=turns.append)
    assert attempt.passed and [s.action for s in attempt.steps] == ["add(k=3)", "add(k=2)", "submit()"]
    assert all(params["response_format"] == action_format(CounterSession(None).tools) for _, params in model.seen)
    assert '"action": "<action>"' in model.seen[0][0][0]["content"] and 'add {"k": integer}' in model.seen[0][0][0]["content"]
    assert [t["mode"] for t in turns] == ["json"] * 3 and [t["index"] for t in turns] == [1, 2, 3]


async def test_a_json_action_cut_by_max_tokens_still_acts_and_says_it_was_cut(monkeypatch):
    """The embedded model once ran a submit answer on past max_tokens: the turn had no action at all."""
    monkeypatch.setattr(actor, "supports_response_schema", lambda model: True)
    scripted.register("cut-actor", replies=['{"action": "add", "arguments": {"k": 5}}',
                                            '{"action": "submit", "arguments": {"because": "' + "so " * 60 + '"}}'])
    turns = []
    await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/cut-actor"),
                              max_steps=2, max_tokens=24, on_turn=turns.append)
    assert [t["action"] for t in turns] == ["add(k=5)", None]
    # the submit's cut argument is not one of submit's: the tool's own check refuses it, naming the cut
    assert "cut at max_tokens=24" in turns[1]["error"] and "unknown argument" in turns[1]["error"]


def test_a_cut_json_object_closes_where_it_stopped_and_never_makes_up_a_value():
    from seasoned.tools.actions import close_cut_json

    assert close_cut_json('{"action": "submit", "arguments": {"answer": "The fin') == {
        "action": "submit", "arguments": {"answer": "The fin"}}
    assert close_cut_json('{"action": "submit", "arguments": {"answer": ') == {"action": "submit", "arguments": {}}
    assert close_cut_json('{"action": "submit", "arguments": {"ans') == {"action": "submit", "arguments": {}}
    assert close_cut_json('{"a": "x\\') == {"a": "x"}  # a lone backslash cannot end a string
    assert close_cut_json('{"a": [1, 2') == {"a": [1, 2]}
    assert close_cut_json('{"a": 1} trailing') == {"a": 1}
    assert close_cut_json("not json") is None and close_cut_json('{"a": }') is None
    assert close_cut_json("{" * 5000) is None  # deeper than actions may nest


async def test_a_cut_reply_acts_when_its_arguments_pass(monkeypatch):
    monkeypatch.setattr(actor, "supports_response_schema", lambda model: True)
    # max_tokens cuts the first reply right after the integer: closed, it is add(k=5)
    model_reply = '{"action": "add", "arguments": {"k": 5'
    scripted.register("cut-ok", replies=[model_reply + '}}', '{"action": "submit", "arguments": {}}'])
    turns = []
    await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/cut-ok"), max_steps=2,
                              max_tokens=count_text_tokens(model_reply), on_turn=turns.append)
    assert turns[0]["action"] == "add(k=5)" and "cut at max_tokens" in turns[0]["observation"]
    assert turns[0]["observation"].endswith("value = 5")


async def test_models_without_a_schema_keep_plain_text_actions(monkeypatch):
    monkeypatch.setattr(actor, "supports_response_schema", lambda model: False)
    model = scripted.register("text-actor", replies=["```action\nadd 5\n```", "```action\nsubmit\n```"])
    attempt = await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/text-actor"), max_steps=5)
    assert attempt.passed and all("response_format" not in params for _, params in model.seen)
    assert "```action" in model.seen[0][0][0]["content"]


async def test_every_turn_reaches_on_turn_with_why_no_action_was_read():
    scripted.register("mixed-actor", replies=["I am not sure what to do.", "```action\nadd 5\n```",
                                              "```action\nsubmit\n```"])
    turns = []
    await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/mixed-actor"), max_steps=5,
                    on_turn=turns.append)
    assert len(turns) == 3
    assert turns[0]["action"] is None and "no action found" in turns[0]["error"]
    assert turns[0]["reply"] == "I am not sure what to do." and turns[0]["observation"].startswith("error:")
    assert turns[1]["action"] == "add(k=5)" and turns[1]["observation"] == "value = 5" and turns[1]["tokens"] > 0


def one_bad_turn_then_solve(messages, params):
    """A reply with no action first, then the right actions (per episode: counts the episode's turns)."""
    seen = sum(m["role"] == "assistant" for m in messages)
    return ["Let me think.", "```action\nadd 5\n```", "```action\nsubmit\n```"][min(seen, 2)]


def test_turns_are_recorded_with_their_candidate_under_best_of_n(tmp_path):
    scripted.register("bon-actor", fn=one_bad_turn_then_solve)
    agent = Agent("scripted/bon-actor", strategy="best_of_n-2", db_url=f"sqlite:///{tmp_path}/r.db",
                  checkpoint=False, curate=False)
    env = CounterEnv()
    events = list(agent.stream(env.get_task("c"), env=env))
    turns = [e.data for e in events if e.kind == "turn"]
    assert {t["candidate"] for t in turns} == {"main-w1-0", "main-w1-1"} and len(turns) == 6
    result = events[-1].data["result"]
    stored = [e.data for e in agent.store.get_run(result.run_id).events if e.kind == "turn"]
    assert sorted((t["candidate"], t["index"]) for t in stored) == sorted((t["candidate"], t["index"]) for t in turns)
    assert sum(t["action"] is None for t in stored) == 2 and all(t["reply"] for t in stored)
    episodes = [e.data for e in events if e.kind == "episode"]
    assert {e["candidate"] for e in episodes} == {"main-w1-0", "main-w1-1"}
    agent.close()


@pytest.fixture
def counter_env(monkeypatch):
    from seasoned.envs.registry import _CUSTOM, register_env

    register_env("counter", CounterEnv)
    monkeypatch.setitem(_CUSTOM, "counter", CounterEnv)


def test_seasoned_run_prints_each_turn_and_runs_show_lists_them(tmp_path, monkeypatch, capsys, counter_env):
    scripted.register("cli-actor", fn=one_bad_turn_then_solve)
    monkeypatch.setenv("SEASONED_DB_URL", f"sqlite:///{tmp_path}/cli.db")
    code, out, _ = seasoned(monkeypatch, capsys, "run", "--env", "counter", "--n", "1", "-m", "scripted/cli-actor",
                            "--strategy", "best_of_n-2")
    assert code == 0
    for candidate in ("main-w1-0", "main-w1-1"):
        assert f"{candidate} turn 1: no action (no action found" in out
        assert f"{candidate} turn 2: add(k=5) -> value = 5" in out
    run_id = next(x for x in out.splitlines() if "verified ·" in x).rsplit(" ", 1)[-1]
    shown = seasoned(monkeypatch, capsys, "runs", "show", run_id)[1]
    assert "Episode turns" in shown and "main-w1-1" in shown and "no action" in shown and "Let me think." in shown
    data = json.loads(seasoned(monkeypatch, capsys, "runs", "show", run_id, "--json")[1])
    assert sum(e["kind"] == "turn" for e in data["events"]) == 6



@pytest.mark.real_model
async def test_the_embedded_model_s_every_turn_is_an_action():
    """The grammar on the real model: every reply of a short episode with the tools example parses."""
    from seasoned.benchmarks.action_parse import tools_env

    env, tasks = tools_env()
    turns = []
    await run_actor(env, tasks[0], Gateway("local/smollm2-135m"), max_steps=3, max_tokens=96, on_turn=turns.append)
    assert turns and all(t["mode"] == "json" for t in turns)
    assert [t["action"] is not None for t in turns] == [True] * len(turns), [t["reply"] for t in turns]
