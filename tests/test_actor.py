"""The acting loop on the scripted provider: plain-text actions, tool calls, budgets, trajectories."""

import json


from seasoned.agents.actor import run_actor, supports_tool_calling
from seasoned.envs import Environment, Observation, Session, Task, Verdict, get_env
from seasoned.models import Budget, Completion, Gateway, scripted
from seasoned.tools import Param, ToolSpec


class CounterSession(Session):
    """Reach the target by pressing `add <k>`; `submit` ends the episode."""

    def __init__(self, task):
        self.task, self.value, self.done = task, 0, False
        self.tools = [ToolSpec("add", "add k", (Param("k", "amount", "integer"),)), ToolSpec("submit", "finish")]

    def observation(self):
        return Observation(f"value = {self.value}", done=self.done)

    async def step(self, action):
        if action.name == "add":
            self.value += action.args["k"]
        else:
            self.done = True
        return self.observation()

    async def verify(self):
        ok = self.value == self.task.metadata["target"]
        return Verdict(float(ok), ok, {"value": self.value})

    def answer(self):
        return str(self.value)

    def close(self):
        pass


class CounterEnv(Environment):
    name, interactive = "counter", True

    def tasks(self, n=None, seed=0, difficulty=None):
        return [self.get_task("c")]

    def get_task(self, task_id):
        return Task(task_id, self.name, "Make the value 5.", metadata={"target": 5})

    async def verify(self, task, answer):
        return Verdict(0.0, False)

    async def open(self, task):
        return CounterSession(task)


async def test_plain_text_actions_until_submit():
    model = scripted.register("actor-text", replies=[
        "I add three.\n```action\nadd 3\n```", "Not an action at all", "Two more: add 2", "```action\nsubmit\n```"])
    attempt = await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/actor-text"), max_steps=10)
    assert attempt.passed and attempt.stopped == "submitted" and attempt.answer == "5"
    assert [s.action for s in attempt.steps] == ["add(k=3)", None, "add(k=2)", "submit()"]
    assert "no action found" in attempt.steps[1].observation  # the format error went back to the model
    assert attempt.tokens > 0 and all(s.tokens > 0 for s in attempt.steps)
    system = model.seen[0][0][0]["content"]
    assert "add <k>" in system and "```action" in system
    assert "Observation:\nvalue = 3" in model.seen[1][0][-1]["content"]


async def test_max_steps_and_budget_end_the_episode():
    scripted.register("actor-loop", fn=lambda messages, params: "```action\nadd 1\n```")
    attempt = await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/actor-loop"), max_steps=3)
    assert attempt.stopped == "max_steps" and len(attempt.steps) == 3 and not attempt.passed
    budget = Budget(max_tokens=400)
    attempt = await run_actor(CounterEnv(), CounterEnv().get_task("c"), Gateway("scripted/actor-loop"),
                              budget=budget, max_steps=100, max_tokens=64)
    assert attempt.stopped == "budget" and len(attempt.steps) < 100
    assert budget.spent.tokens <= 400


class ToolCallingGateway:
    """A stand-in gateway whose model answers with OpenAI-style tool calls (the scripted provider only
    returns text)."""

    model = "fake/tool-model"

    def __init__(self, calls):
        self.calls, self.seen = list(calls), []

    async def acomplete(self, messages, **kwargs):
        self.seen.append((list(messages), kwargs))
        name, args = self.calls.pop(0)
        call = {"id": f"call_{len(self.seen)}", "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)}}
        return Completion(text="", model=self.model, prompt_tokens=10, completion_tokens=5, tool_calls=[call])


async def test_tool_calling_format():
    gateway = ToolCallingGateway([("add", {"k": 4}), ("add", {"k": 1}), ("submit", {})])
    env = CounterEnv()
    attempt = await run_actor(env, env.get_task("c"), gateway, max_steps=5, tool_calling=True)
    assert attempt.passed and attempt.tokens == 45
    messages, kwargs = gateway.seen[-1]
    assert [t["function"]["name"] for t in kwargs["tools"]] == ["add", "submit"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "add"
    assert messages[-1] == {"role": "tool", "tool_call_id": "call_2", "content": "value = 5"}


def test_tool_calling_detection():
    assert not supports_tool_calling("local/smollm2-135m")
    assert not supports_tool_calling("scripted/x")


async def test_answer_environment_is_one_turn():
    env = get_env("game24")
    task = env.tasks(n=1)[0]
    a, b, c, d = task.metadata["numbers"]
    scripted.register("actor-24", replies=["Answer: (1 + 2 + 3) * 4"])
    model = scripted.register("actor-24", replies=["Answer: (1 + 2 + 3) * 4"])
    attempt = await run_actor(env, task, Gateway("scripted/actor-24"), memory_context="Try to make 4 * 6.")
    assert attempt.stopped == "answered" and attempt.answer == "Answer: (1 + 2 + 3) * 4"
    assert attempt.verdict.passed == ((a, b, c, d) == (1, 2, 3, 4))
    assert "Try to make 4 * 6." in model.seen[0][0][0]["content"]


async def test_actor_fixes_a_swe_fixture_with_text_actions():
    env = get_env("swe")
    task = env.get_task("seasoned-fixtures__intervals-1")
    scripted.register("actor-swe", replies=[
        "Let me look.\n```action\nsearch merged\\[-1\\] intervals\n```",
        "The end must be the max.\n```action\nedit intervals/ops.py\n<<<<<<< SEARCH\n"
        "            merged[-1] = (merged[-1][0], end)\n=======\n"
        "            merged[-1] = (merged[-1][0], max(merged[-1][1], end))\n>>>>>>> REPLACE\n```",
        "```bash\npython -c 'from intervals import merge; print(merge([(1, 10), (2, 3)]))'\n```",
        "```action\nsubmit\n```",
    ])
    attempt = await run_actor(env, task, Gateway("scripted/actor-swe"), max_steps=8)
    assert attempt.stopped == "submitted"
    assert "[(1, 10)]" in attempt.steps[2].observation
    assert "max(merged[-1][1], end)" in attempt.answer
    assert attempt.passed, attempt.verdict.details
