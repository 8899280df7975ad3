"""``response_format`` and ``stop`` are honoured or refused by every provider, never silently dropped."""

import json

import pytest
from pydantic import BaseModel
from seasoned.models import Gateway, Ledger, ModelCallError, ModelConfigError, providers, scripted, sim
from seasoned.models.grammar import grammar_of

ACTION = {"type": "object", "properties": {
    "tool": {"type": "string", "enum": ["shell", "view", "finish"]},
    "argument": {"type": "string", "maxLength": 12},
    "confidence": {"type": "integer", "minimum": 0, "maximum": 9},
}, "required": ["tool", "argument", "confidence"]}
ACTION_FORMAT = {"type": "json_schema", "json_schema": {"name": "action", "schema": ACTION}}


def gateway(model: str) -> Gateway:
    return Gateway(model, ledger=Ledger())


@pytest.mark.real_model
def test_schema_constrained_replies_of_the_embedded_model_always_parse():
    gw = gateway("local/smollm2-135m")
    prompts = ["List the files in this directory.", "What is 2 + 2?", "Write a poem about the sea."]
    for seed, prompt in enumerate(prompts):
        # every value is bounded (enum, maxLength, integer range): the longest reply the grammar allows is under
        # 140 characters (\u escapes included), so 160 tokens always finish it, whatever the model prefers
        reply = gw.complete(prompt, max_tokens=160, seed=seed, temperature=1.0, response_format=ACTION_FORMAT)
        action = json.loads(reply.text)
        assert action["tool"] in ("shell", "view", "finish") and len(action["argument"]) <= 12
        assert 0 <= action["confidence"] <= 9 and reply.finish_reason == "stop"


@pytest.mark.real_model
def test_json_object_and_pydantic_formats_on_the_embedded_model():
    class Answer(BaseModel):
        answer: int

    gw = gateway("local/smollm2-135m")
    reply = gw.complete("What is 17 + 25?", max_tokens=24, seed=1, response_format=Answer)
    assert isinstance(Answer.model_validate_json(reply.text).answer, int)
    unconstrained = gw.complete("What is 17 + 25?", max_tokens=24, seed=1, response_format={"type": "text"})
    assert not unconstrained.text.lstrip().startswith("{")  # plain text asks for nothing
    obj = gw.complete('Reply with {"ok": true}.', max_tokens=24, seed=2, response_format={"type": "json_object"})
    if obj.finish_reason == "stop":
        assert isinstance(json.loads(obj.text), dict)
    else:
        assert obj.text.lstrip().startswith("{")


@pytest.mark.real_model
def test_the_embedded_model_stops_at_a_stop_string():
    gw = gateway("local/smollm2-135m")
    free = gw.complete("Count from 1 to 20, separated by commas.", max_tokens=40, seed=0, temperature=0.0)
    assert "5" in free.text
    cut = gw.complete("Count from 1 to 20, separated by commas.", max_tokens=40, seed=0, temperature=0.0, stop=["5"])
    assert "5" not in cut.text and free.text.startswith(cut.text) and cut.finish_reason == "stop"
    assert cut.completion_tokens < free.completion_tokens


def test_stop_cuts_the_scripted_reply_and_the_reason_says_stop():
    scripted.register("talker", fn=lambda messages, params: "alpha beta STOP gamma delta")
    gw = gateway("scripted/talker")
    reply = gw.complete("go", max_tokens=50, stop=["STOP"])
    assert reply.text == "alpha beta " and reply.finish_reason == "stop"
    assert gw.complete("go", max_tokens=50, stop="beta").text == "alpha "
    assert gw.complete("go", max_tokens=50).text == "alpha beta STOP gamma delta"


def test_the_gateway_cuts_at_stop_what_a_provider_left_uncut():
    # A provider that ignores ``stop`` (the simulator writes its reply whole): the gateway still cuts it.
    sim.register(sim.SimWorld("stops", kinds={"easy": sim.SimKind(8, 2, 20)}))
    gw = gateway("sim/stops")
    reply = gw.complete(f"{sim.task_tag('t1', 'easy')} answer please", max_tokens=64, seed=1, stop=[":"])
    assert ":" not in reply.text and reply.finish_reason == "stop"


def test_a_malformed_stop_is_refused_before_the_call():
    model = scripted.register("never-stop", replies=["x"])
    with pytest.raises(ModelConfigError, match="stop"):
        gateway("scripted/never-stop").complete("go", stop=[1, 2])
    assert model.calls == 0


def test_a_provider_that_cannot_honour_response_format_refuses_it():
    sim.register(sim.SimWorld("plain", kinds={"easy": sim.SimKind(8, 2, 20)}))
    gw = gateway("sim/plain")
    with pytest.raises(ModelCallError, match="response_format") as refused:
        gw.complete("answer", max_tokens=8, response_format=ACTION_FORMAT)
    assert refused.value.status_code == 400 and not refused.value.transient
    assert gw.ledger.calls() == []  # refused before any call
    with pytest.raises(ModelCallError, match="response_format"):  # in a chain, every model must honour it
        gw.complete("answer", model="local/smollm2-135m|sim/plain", max_tokens=8, response_format=ACTION_FORMAT)


def test_scripted_models_receive_response_format_for_their_script():
    model = scripted.register("structured", fn=lambda messages, params: json.dumps({"seen": params["response_format"]}))
    reply = gateway("scripted/structured").complete("go", response_format=ACTION_FORMAT)
    assert json.loads(reply.text)["seen"] == ACTION_FORMAT and model.calls == 1


@pytest.mark.parametrize(("response_format", "field"), [
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"schema": "not a schema"}}, "response_format.json_schema.schema"),
    ("json", "response_format"),
])
def test_a_malformed_response_format_names_the_field(response_format, field):
    with pytest.raises(ModelConfigError, match=field.replace(".", r"\.")):
        grammar_of(response_format)


def test_schemas_become_grammars_once_and_big_ones_are_refused():
    first = grammar_of(ACTION_FORMAT)
    assert first is grammar_of(json.loads(json.dumps(ACTION_FORMAT)))  # cached per schema
    assert grammar_of({"type": "text"}) is None and grammar_of(None) is None
    assert "root" in grammar_of({"type": "json_object"})
    deep: dict = {"type": "object"}
    for _ in range(40):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(ModelConfigError, match="too large"):
        grammar_of({"type": "json_schema", "json_schema": {"schema": deep}})


def test_local_models_say_they_take_schemas():
    assert providers.supports_response_schema("local/smollm2-135m")
    assert not providers.supports_response_schema("sim/plain")
    assert not providers.supports_response_schema("local/smollm2-135m|sim/plain")
