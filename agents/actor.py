"""The acting loop: one episode of an agent in an environment = one candidate for the solve graph.

    attempt = await run_actor(env, task, gateway, budget=budget, max_steps=20, memory_context=notes)
    attempt.verdict.passed, attempt.answer, attempt.steps, attempt.tokens

Interactive environments (SWE, web): the model sees the task and the first observation, replies with one
action per turn, gets the observation back, until it submits, the episode ends, ``max_steps`` is reached
or the budget is spent; then the environment verifies the session. How a model names its action:
  - a litellm tool call, when the model supports tool calling;
  - else one JSON object ``{"action": ..., "arguments": {...}}`` constrained to the tools' action schema,
    when the provider takes a JSON-schema ``response_format`` (the embedded model, through a llama.cpp
    grammar): every such reply is a parseable action;
  - else a plain-text action (see ``seasoned.tools.actions``).
Non-interactive environments: one completion, verified as a text answer. Model-side errors (a malformed
action) are fed back as observations and never crash the episode; every turn (the reply, the action or
why there is none, the observation) is in the trajectory and goes to ``on_turn`` as it happens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from seasoned.envs.base import Environment, Session, Task, Verdict
from seasoned.errors import ModelConfigError, SeasonedError, ToolError
from seasoned.models import Budget, BudgetExceeded
from seasoned.models.providers import supports_response_schema
from seasoned.tools.actions import ToolSpec, parse_cut_json_action, parse_text_action, parse_tool_call

SYSTEM_TEXT = """You act in an environment, one action per reply. First think briefly, then give exactly one
action in a fenced block:
```action
<action name> <arguments>
```
Available actions:
{usage}"""

SYSTEM_TOOLS = "You act in an environment by calling the tools you are given, one tool call per reply."

SYSTEM_JSON = """You act in an environment, one action per reply. Reply with one JSON object naming the
action and its arguments: {{"action": "<action>", "arguments": {{...}}}}
Available actions:
{usage}"""

REPLY_CHARS = 2000  # of a turn's raw reply, kept in the trace
OBSERVATION_CHARS = 1000  # of a turn's observation, kept in the trace (the model sees up to observation_chars)


@dataclass
class Step:
    """One turn: what the model said, the action it chose (if any), what came back."""

    thought: str
    action: str | None
    observation: str
    tokens: int = 0
    error: str | None = None


@dataclass
class Attempt:
    """One acting episode: the final answer, its verdict, the trajectory and its spend."""

    task_id: str
    answer: str
    verdict: Verdict | None
    steps: list[Step] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0
    stopped: str = ""  # answered | submitted | done | max_steps | budget | model_error

    @property
    def passed(self) -> bool:
        return bool(self.verdict and self.verdict.passed)


def supports_tool_calling(model: str) -> bool:
    """Whether a model takes litellm ``tools=`` (the embedded and scripted providers do not)."""
    first = model.split("|")[0].strip()
    if first.startswith(("local/", "scripted/")):
        return False
    try:
        import litellm

        return bool(litellm.supports_function_calling(model=first))
    except Exception:  # noqa: BLE001 - unknown to litellm's tables: no tool calling
        return False


def action_format(tools: list[ToolSpec]) -> dict:
    """The ``response_format`` of one action: ``{"action": <tool>, "arguments": {<its parameters>}}``, one
    alternative per tool (so a name always comes with its own arguments). "action" sorts before "arguments":
    grammars built from a schema (llama.cpp) write properties in name order, so the tool comes first."""
    alternatives = []
    for tool in tools:
        arguments = {"type": "object", "additionalProperties": False,
                     "properties": {p.name: {"type": p.type} for p in tool.params},
                     "required": [p.name for p in tool.params if p.required]}
        alternatives.append({"type": "object", "additionalProperties": False, "required": ["action", "arguments"],
                             "properties": {"action": {"const": tool.name}, "arguments": arguments}})
    return {"type": "json_schema", "json_schema": {"name": "action", "strict": True,
                                                   "schema": {"anyOf": alternatives}}}


def json_usage(tool: ToolSpec) -> str:
    """How an action is written in JSON mode, e.g. ``view {"path": string, "start": integer (optional)}``."""
    args = ", ".join(f'"{p.name}": {p.type}' + ("" if p.required else " (optional)") for p in tool.params)
    return f"{tool.name} {{{args}}}"


def _with_memory(prompt: str, memory_context: str) -> str:
    if not memory_context.strip():
        return prompt
    return f"Notes from earlier experience (use what helps):\n{memory_context.strip()}\n\n{prompt}"


def demonstration_turns(demonstrations: list[dict] | None) -> list[dict]:
    """Verified earlier episodes as chat turns: the task, then the actions that solved it."""
    turns = []
    for demo in demonstrations or []:
        task, reply = str(demo.get("task") or "").strip(), str(demo.get("reply") or "").strip()
        if task and reply:
            turns += [{"role": "user", "content": task},
                      {"role": "assistant", "content": f"Solved earlier with these actions:\n{reply}"}]
    return turns


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"


TurnListener = Callable[[dict], None]


async def run_actor(env: Environment, task: Task, gateway, *, budget: Budget | None = None, max_steps: int = 20,
                    memory_context: str = "", max_tokens: int = 512, tool_calling: bool | None = None,
                    structured: bool | None = None, observation_chars: int = 4000, history_turns: int = 8,
                    role: str = "actor", demonstrations: list[dict] | None = None,
                    on_turn: TurnListener | None = None) -> Attempt:
    """Run one episode of ``task`` with the model behind ``gateway``; see the module docstring.
    ``demonstrations`` (``{"task", "reply"}``) are verified earlier episodes, replayed as chat turns.
    ``tool_calling``/``structured``: force (or forbid) tool calls / schema-constrained JSON actions (default:
    what the provider supports). ``on_turn`` gets each turn as it ends (``turn_record``)."""
    if not env.interactive:
        return await _answer_once(env, task, gateway, budget, memory_context, max_tokens, role, demonstrations)
    session = await env.open(task)
    try:
        use_tools = supports_tool_calling(gateway.model) if tool_calling is None else tool_calling
        if structured is None:
            structured = not use_tools and supports_response_schema(gateway.model)
        mode = "tools" if use_tools else "json" if structured else "text"
        loop = _Loop(session, gateway, budget, max_tokens, mode, observation_chars, history_turns, role, on_turn)
        attempt = await loop.run(task, memory_context, max_steps, demonstrations)
        attempt.verdict = await session.verify()
        attempt.answer = session.answer()
        return attempt
    finally:
        closer = getattr(session, "aclose", None)
        if closer is not None:
            await closer()
        else:
            session.close()


async def _answer_once(env, task, gateway, budget, memory_context, max_tokens, role, demonstrations=None) -> Attempt:
    attempt = Attempt(task.id, "", None)
    earlier = [m for d in demonstrations or [] for m in (
        {"role": "user", "content": str(d.get("task", ""))}, {"role": "assistant", "content": str(d.get("reply", ""))})]
    try:
        reply = await gateway.acomplete([*earlier, {"role": "user", "content": _with_memory(task.prompt, memory_context)}],
                                        max_tokens=max_tokens, budget=budget, role=role, shrink_to_fit=True)
    except BudgetExceeded as exc:
        attempt.stopped, attempt.verdict = "budget", Verdict(0.0, False, {"reason": str(exc)})
        return attempt
    except ModelConfigError:
        raise  # a setting is wrong: no episode can succeed, the run ends with it
    except SeasonedError as exc:
        attempt.stopped, attempt.verdict = "model_error", Verdict(0.0, False, {"reason": str(exc)})
        return attempt
    attempt.answer, attempt.tokens, attempt.cost_usd = reply.text, reply.total_tokens, reply.cost_usd
    attempt.verdict = await env.verify(task, reply.text)
    attempt.steps.append(Step(reply.text, None, "", reply.total_tokens))
    attempt.stopped = "answered"
    return attempt


def turn_record(index: int, step: Step, mode: str) -> dict:
    """One turn as the trace keeps it: the raw reply (clipped), the action or why there is none, the
    observation (clipped), its tokens, and how actions were asked for (tools, json or text)."""
    return {"index": index, "mode": mode, "reply": _clip(step.thought, REPLY_CHARS), "action": step.action,
            "error": _clip(step.error, 600) if step.error else None,
            "observation": _clip(step.observation, OBSERVATION_CHARS), "tokens": step.tokens}


class _Loop:
    """The turn loop of one interactive episode (kept apart so each piece stays short)."""

    def __init__(self, session: Session, gateway, budget, max_tokens, mode, observation_chars,
                 history_turns, role, on_turn=None):
        self.session, self.gateway, self.budget = session, gateway, budget
        self.max_tokens, self.mode, self.role, self.on_turn = max_tokens, mode, role, on_turn
        self.use_tools = mode == "tools"
        self.observation_chars, self.history_turns = observation_chars, history_turns
        self.tools: list[ToolSpec] = list(session.tools)
        self.head: list[dict] = []
        self.turns: list[list[dict]] = []  # each turn's messages, trimmed to the last few for the prompt

    def messages(self) -> list[dict]:
        recent = self.turns[-self.history_turns:]
        return self.head + [m for turn in recent for m in turn]

    def system(self) -> str:
        if self.mode == "tools":
            return SYSTEM_TOOLS
        usage = json_usage if self.mode == "json" else ToolSpec.text_usage
        lines = "\n".join(f"- {usage(t)}    ({t.description})" for t in self.tools)
        return (SYSTEM_JSON if self.mode == "json" else SYSTEM_TEXT).format(usage=lines)

    def how_to_act(self) -> dict:
        """The call's extra settings: the tools, or the action schema, or nothing (plain text)."""
        if self.mode == "tools":
            return {"tools": [t.openai() for t in self.tools]}
        return {"response_format": action_format(self.tools)} if self.mode == "json" else {}

    def record(self, attempt: Attempt, step: Step) -> None:
        attempt.steps.append(step)
        if self.on_turn is not None:
            self.on_turn(turn_record(len(attempt.steps), step, self.mode))

    async def run(self, task: Task, memory_context: str, max_steps: int,
                  demonstrations: list[dict] | None = None) -> Attempt:
        system = self.system()
        first = self.session.observation().text
        self.head = [{"role": "system", "content": system}, *demonstration_turns(demonstrations),
                     {"role": "user", "content": _with_memory(task.prompt, memory_context)
                      + f"\n\nObservation:\n{_clip(first, self.observation_chars)}"}]
        attempt = Attempt(task.id, "", None, stopped="max_steps")
        for _ in range(max_steps):
            if self.budget is not None and self.budget.exhausted():
                attempt.stopped = "budget"
                break
            try:
                reply = await self.gateway.acomplete(
                    self.messages(), max_tokens=self.max_tokens, budget=self.budget, role=self.role,
                    shrink_to_fit=True, **self.how_to_act())
            except BudgetExceeded:
                attempt.stopped = "budget"
                break
            except ModelConfigError:
                raise
            except SeasonedError as exc:
                self.record(attempt, Step("", None, "", 0, error=f"model error: {exc}"))
                attempt.stopped = "model_error"
                break
            attempt.tokens += reply.total_tokens
            attempt.cost_usd += reply.cost_usd
            step = await self._act(reply)
            step.tokens = reply.total_tokens
            self.record(attempt, step)
            if self.session.observation().done:
                attempt.stopped = "submitted" if step.action and step.action.startswith("submit") else "done"
                break
        return attempt

    def _cut_action(self, text: str, error: str | None):
        """A schema-constrained reply that ``max_tokens`` cut is a valid action up to the cut: closed, it
        is still one (its last argument may be short). Returns ``(action, error)``."""
        try:
            action = parse_cut_json_action(text, self.tools)
        except ToolError as exc:
            return None, f"the reply was cut at max_tokens={self.max_tokens}: {exc}"
        if action is None:
            return None, error
        return action, f"the reply was cut at max_tokens={self.max_tokens}; the action ran with what it had"

    async def _act(self, reply) -> Step:
        """Parse the reply's action, do it, record the exchange for the next prompt."""
        call = (reply.tool_calls or [None])[0] if self.use_tools else None
        try:
            action = parse_tool_call(call, self.tools) if call else parse_text_action(reply.text, self.tools)
        except ToolError as exc:
            action, error = None, str(exc)
        else:
            error = None
        if action is None and self.mode == "json" and reply.finish_reason == "length":
            action, error = self._cut_action(reply.text, error)
        if action is None:
            observation = f"error: {error}"
        else:
            observation = (await self.session.step(action)).text
        if action is not None and error:  # acted on a cut reply: say so with the observation
            observation = f"note: {error}\n{observation}"
        clipped = _clip(observation, self.observation_chars)
        if call:
            call_id = call.get("id") or "call_0"
            function = call.get("function") or {}
            arguments = function.get("arguments")
            assistant = {"role": "assistant", "content": reply.text or None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": function.get("name"),
                             "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments or {})}}]}
            self.turns.append([assistant, {"role": "tool", "tool_call_id": call_id, "content": clipped}])
        else:
            self.turns.append([{"role": "assistant", "content": reply.text},
                               {"role": "user", "content": f"Observation:\n{clipped}"}])
        return Step(reply.text, action.render() if action else None, clipped, error=error)


__all__ = ["Attempt", "Step", "action_format", "run_actor", "supports_tool_calling", "turn_record"]
