"""What the Agent needs from the parts a user hands it, as Protocols: any object with these methods
works (``MemoryBank`` is the one shipped; environments subclass ``seasoned.envs.base.Environment``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from seasoned.envs.base import Task, Verdict

#: A question as text, or an environment's task (its prompt, id, stages).
TaskInput = str | Task

#: ``fn(text)``, sync or async, returning a bool, a reward in 0..1 or a ``Verdict`` (``graphs.checking``).
Checker = Callable[[str], "bool | float | Verdict | Awaitable[bool | float | Verdict]"]


@runtime_checkable
class Memory(Protocol):
    """The experience memory an agent reads and curates (``seasoned.memory.MemoryBank``)."""

    channels: Any  # per-channel outcome counts (``memory.channels.ChannelStats``)

    def retrieve(self, query: str, k: int = 5, kinds: Sequence[str] | None = None,
                 namespace: str | None = None, **options: Any) -> list: ...

    async def aadd(self, item: Any, *, namespace: str | None = None, **options: Any) -> Any: ...

    def put(self, key: str, item: Any, *, namespace: str | None = None, **options: Any) -> Any: ...

    def record_outcome(self, item_ids: Sequence[str], success: bool, *, namespace: str | None = None) -> list: ...

    def record_allocation(self, subtask_kind: str, **record: Any) -> Any: ...

    def allocations(self, subtask_kind: str | None = None, **options: Any) -> list: ...


@runtime_checkable
class Environment(Protocol):
    """A task environment (``seasoned.envs``): checks answers, or is acted in when ``interactive``."""

    name: str
    interactive: bool

    def extract_answer(self, text: str) -> str | None: ...

    async def verify(self, task: Any, text: str) -> Verdict: ...
