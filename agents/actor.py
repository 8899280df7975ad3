"""The acting loop: one episode of an agent in an environment = one candidate for the solve graph.

    attempt = await run_actor(env, task, gateway, budget=budget, max_steps=20, memory_context=notes)
    attempt.verdict.passed, attempt.answer, attempt.steps, attempt.tokens

Interactive environments (SWE, web): the model sees the task and the first observation, replies with one
action per turn (a litellm tool call when the model supports tool calling, else a plain-text action, see
``seasoned.tools.actions``), gets the observation back, until it submits, the episode ends, ``max_steps``
is reached or the budget is spent; then the environment verifies the session. Non-interactive
environments: one completion, verified as a text answer. Model-side errors (a malformed action) are fed
back as observations and never crash the episode; the whole trajectory is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from seasoned.envs.base import Environment, Session, Task, Verdict
from seasoned.errors import ModelConfigError, SeasonedError, ToolError
from seasoned.models import Budget, BudgetExceeded
from seasoned.tools.actions import ToolSpec, parse_text_action, parse_tool_call

SYSTEM_TEXT = """You act in an environment, one action per reply. First think briefly, then give exactly one
action in a fenced block:
```action
<action name> <arguments>
```
Available actions:
{usage}"""

SYSTEM_TOOLS = "You act in an environment by calling the tools you are given, one tool call per reply."


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
    except Exception:
        return False


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


async def run_actor(env: Environment, task: Task, gateway, *, budget: Budget | None = None, max_steps: int = 20,
                    memory_context: str = "", max_tokens: int = 512, tool_calling: bool | None = None,
                    observation_chars: int = 4000, history_turns: int = 8, role: str = "actor",
                    demonstrations: list[dict] | None = None) -> Attempt:
    """Run one episode of ``task`` with the model behind ``gateway``; see the module docstring.
    ``demonstrations`` (``{"task", "reply"}``) are verified earlier episodes, replayed as chat turns."""
    if not env.interactive:
        return await _answer_once(env, task, gateway, budget, memory_context, max_tokens, role, demonstrations)
    session = await env.open(task)
    try:
        use_tools = supports_tool_calling(gateway.model) if tool_calling is None else tool_calling
        loop = _Loop(session, gateway, budget, max_tokens, use_tools, observation_chars, history_turns, role)
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


class _Loop:
    """The turn loop of one interactive episode (kept apart so each piece stays short)."""

    def __init__(self, session: Session, gateway, budget, max_tokens, use_tools, observation_chars,
                 history_turns, role):
        self.session, self.gateway, self.budget = session, gateway, budget
        self.max_tokens, self.use_tools, self.role = max_tokens, use_tools, role
        self.observation_chars, self.history_turns = observation_chars, history_turns
        self.tools: list[ToolSpec] = list(session.tools)
        self.head: list[dict] = []
        self.turns: list[list[dict]] = []  # each turn's messages, trimmed to the last few for the prompt

    def messages(self) -> list[dict]:
        recent = self.turns[-self.history_turns:]
        return self.head + [m for turn in recent for m in turn]

    async def run(self, task: Task, memory_context: str, max_steps: int,
                  demonstrations: list[dict] | None = None) -> Attempt:
        usage = "\n".join(f"- {t.text_usage()}    ({t.description})" for t in self.tools)
        system = SYSTEM_TOOLS if self.use_tools else SYSTEM_TEXT.format(usage=usage)
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
                    shrink_to_fit=True, **({"tools": [t.openai() for t in self.tools]} if self.use_tools else {}))
            except BudgetExceeded:
                attempt.stopped = "budget"
                break
            except ModelConfigError:
                raise
            except SeasonedError as exc:
                attempt.steps.append(Step("", None, "", 0, error=f"model error: {exc}"))
                attempt.stopped = "model_error"
                break
            attempt.tokens += reply.total_tokens
            attempt.cost_usd += reply.cost_usd
            step = await self._act(reply)
            step.tokens = reply.total_tokens
            attempt.steps.append(step)
            if self.session.observation().done:
                attempt.stopped = "submitted" if step.action and step.action.startswith("submit") else "done"
                break
        return attempt

    async def _act(self, reply) -> Step:
        """Parse the reply's action, do it, record the exchange for the next prompt."""
        call = (reply.tool_calls or [None])[0] if self.use_tools else None
        try:
            action = parse_tool_call(call, self.tools) if call else parse_text_action(reply.text, self.tools)
        except ToolError as exc:
            action, error = None, str(exc)
        else:
            error = None
        if action is None:
            observation = f"error: {error}"
        else:
            observation = (await self.session.step(action)).text
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


__all__ = ["Attempt", "Step", "run_actor", "supports_tool_calling"]
