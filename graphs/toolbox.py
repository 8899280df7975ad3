"""The application's tools as an interactive episode: ``Agent(tools=[...])`` answers a task by acting.

The tools (``seasoned.tools.user_tools``: plain callables, ``python_tool()``, MCP servers) become the
actions of a session, plus ``answer TEXT`` which ends the episode with the final answer. The acting
loop is the one environments use (``seasoned.agents.actor``): tool calls for models that support them,
plain-text actions otherwise; every step is recorded with the candidate. A tool's exception comes back
to the model as an observation; the run's checker judges the answer like any candidate's.

Names are unique: the application's own tools (and ``answer``) win over an MCP server's tool of the same
name, and an earlier server's over a later one's. A tool left out is never silent: it is logged, listed
in ``Toolbox.collisions`` and sent as a ``tools`` event to whoever streams the run.
"""

from __future__ import annotations

import logging
from typing import Any

from seasoned.envs.base import Environment, Observation, Session, Task, Verdict
from seasoned.errors import ToolError
from seasoned.tools.actions import Action, Param, ToolSpec
from seasoned.tools.user_tools import UserTool, as_tools

from .watch import stream_writer

_log = logging.getLogger(__name__)

ANSWER = ToolSpec("answer", "Give the final answer and finish.", (Param("text", "the final answer", rest=True),))


class ToolboxSession(Session):
    def __init__(self, task: Task, tools: list[UserTool]):
        self.task = task
        self.by_name = {t.name: t for t in tools}
        self.tools = [t.spec for t in tools] + [ANSWER]
        self._last = Observation("Use the tools when they help; finish with the answer action.")
        self._answer = ""

    def observation(self) -> Observation:
        return self._last

    async def step(self, action: Action) -> Observation:
        if action.name == "answer":
            self._answer = str(action.args.get("text", "")).strip()
            self._last = Observation(f"answered: {self._answer[:200]}", done=True)
            return self._last
        tool = self.by_name.get(action.name)
        if tool is None:
            text = f"error: no tool {action.name!r}; tools: {', '.join(self.by_name) or 'none'}, answer"
        else:
            try:
                text = await tool.call(action.args)
            except ToolError as exc:
                text = f"error: {exc}"
            except Exception as exc:  # noqa: BLE001 - the application's tool failed: the model hears why
                text = f"error: {action.name} raised {type(exc).__name__}: {exc}"
        self._last = Observation(text)
        return self._last

    async def verify(self) -> Verdict | None:  # type: ignore[override]
        return None  # the run's checker (if any) judges the answer, as for any candidate

    def answer(self) -> str:
        return self._answer

    def close(self) -> None:
        pass


class Toolbox(Environment):
    """An interactive environment made of the application's tools (one per Agent)."""

    name = "tools"
    interactive = True

    def __init__(self, tools: list[Any]):
        self.items = as_tools(tools)
        self.collisions: list[str] = []  # one line per MCP tool left out because its name was taken

    async def resolve(self) -> list[UserTool]:
        """Callables as they are; each MCP server's tools listed (the server starts on first use), except
        those whose name is already taken (reported, see the module's docstring)."""
        owner = {t.name: "the application's own tool" for t in self.items if isinstance(t, UserTool)}
        owner[ANSWER.name] = "the answer action"
        tools: list[UserTool] = []
        for item in self.items:
            if isinstance(item, UserTool):
                tools.append(item)
                continue
            for tool in await item.list_tools():
                if tool.name in owner:
                    self._collision(f"{item!r}: tool {tool.name!r} is not offered: the name is taken by "
                                    f"{owner[tool.name]}")
                    continue
                owner[tool.name] = f"a tool of {item!r}"
                tools.append(tool)
        return tools

    def _collision(self, line: str) -> None:
        if line in self.collisions:  # each session lists the tools again: report once
            return
        self.collisions.append(line)
        _log.warning("%s", line)
        stream_writer()({"event": "tools", "collision": line})

    def task(self, prompt: str, system: str | None = None, task_id: str = "task") -> Task:
        return Task(task_id, self.name, f"{system.strip()}\n\n{prompt}" if system else prompt)

    def tasks(self, n: int | None = None, seed: int = 0, difficulty: int | None = None) -> list[Task]:
        return []

    def get_task(self, task_id: str) -> Task:
        raise self.unknown_task(task_id, [])

    async def verify(self, task: Task, answer: str) -> Verdict:
        raise ToolError("a toolbox has no checker of its own: give the Agent a checker")

    def extract_answer(self, text: str) -> str | None:
        return (text or "").strip() or None

    async def open(self, task: Task) -> Session:
        return ToolboxSession(task, await self.resolve())

    async def aclose(self) -> None:
        """Stop the MCP servers started for this toolbox on the running loop."""
        for item in self.items:
            closer = getattr(item, "aclose", None)
            if closer is not None:
                await closer()
