"""The one interface every environment implements (see ``seasoned.envs`` for the overview)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from seasoned.errors import EnvError
from seasoned.tools.actions import Action, ToolSpec


@dataclass(frozen=True)
class Stage:
    """One stage of a multi-stage task: a name, a kind (for budget statistics) and what it asks."""

    name: str
    kind: str
    description: str
    difficulty: float | None = None  # the environment's own estimate, 0 (trivial) .. 1 (very hard)


@dataclass
class Task:
    """One task: ``prompt`` is everything the model is shown; ``metadata`` holds what verification
    needs (never shown: reference answers, hidden tests, reference patches)."""

    id: str
    env: str
    prompt: str
    stages: list[Stage] | None = None
    difficulty: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Verdict:
    """The environment's judgement of one answer / one episode."""

    reward: float
    passed: bool
    details: str | dict = ""

    def __post_init__(self) -> None:
        self.reward = float(min(max(self.reward, 0.0), 1.0))


@dataclass
class Observation:
    """What the agent sees after an action."""

    text: str
    done: bool = False
    reward: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Session(ABC):
    """One interactive episode of a task (its own workspace / browser page)."""

    task: Task
    tools: list[ToolSpec]

    @abstractmethod
    def observation(self) -> Observation:
        """The current observation (the first one right after ``open``)."""

    @abstractmethod
    async def step(self, action: Action) -> Observation:
        """Do one action; tool errors come back as an observation, never as an exception."""

    @abstractmethod
    async def verify(self) -> Verdict:
        """Judge the episode's current state (tests / page reward)."""

    def answer(self) -> str:
        """The episode's result as text (a SWE diff, the final page state...), for the record."""
        return ""

    @abstractmethod
    def close(self) -> None:
        """Free the workspace / browser. Idempotent."""

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class Environment(ABC):
    """A family of tasks with a verifier. Non-interactive envs judge a final text answer; interactive
    ones (``interactive = True``) are acted in through ``open(task) -> Session``."""

    name: str = ""
    description: str = ""
    interactive: bool = False

    @abstractmethod
    def tasks(self, n: int | None = None, seed: int = 0, difficulty: int | None = None) -> list[Task]:
        """``n`` tasks (all, or a seeded default count, when ``n`` is None)."""

    @abstractmethod
    def get_task(self, task_id: str) -> Task:
        """The task with this id; raises ``EnvError`` when there is none."""

    @abstractmethod
    async def verify(self, task: Task, answer: str) -> Verdict:
        """Judge a final answer (model text, a code block, a diff...)."""

    def extract_answer(self, text: str) -> str | None:
        """The normalized answer in a model output (for majority voting); None when there is none."""
        return (text or "").strip() or None

    async def open(self, task: Task) -> Session:
        raise EnvError(f"environment {self.name!r} is not interactive: answer with text and call verify()")

    def close(self) -> None:
        """Free shared resources (servers, browsers, caches)."""

    def unknown_task(self, task_id: str, examples: list[str]) -> EnvError:
        shown = ", ".join(examples[:5])
        return EnvError(f"environment {self.name!r} has no task {task_id!r} (ids look like: {shown})")
