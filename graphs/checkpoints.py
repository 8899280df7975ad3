"""The agent's graphs compiled with a checkpointer, one set per event loop.

Checkpoints are what make a run resumable: with ``checkpoint=True`` they go to a SQLite file under
``SEASONED_HOME`` (LangGraph's async SQLite saver, whose connection belongs to the loop that opened
it), otherwise to memory.
"""

from __future__ import annotations

import asyncio
import weakref

from langgraph.graph import StateGraph
from seasoned.models import seasoned_home


class CheckpointedGraphs:
    def __init__(self, builders: dict[str, StateGraph], checkpoint: bool = True):
        self.builders = builders
        self.checkpoint = checkpoint
        self._by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def get(self, kind: str):
        """The ``kind`` graph (``solve`` or ``task``) compiled with this loop's checkpointer."""
        graphs = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        if kind not in graphs:
            if "saver" not in graphs:
                graphs["saver"] = await self._saver()
            graphs[kind] = self.builders[kind].compile(checkpointer=graphs["saver"])
        return graphs[kind]

    async def _saver(self):
        if not self.checkpoint:
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        import aiosqlite
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        connection = await aiosqlite.connect(str(seasoned_home() / "checkpoints.sqlite"))
        saver = AsyncSqliteSaver(connection)
        await saver.setup()
        return saver

    async def aclose(self) -> None:
        """Close the checkpoint connection opened on the running loop."""
        graphs = self._by_loop.pop(asyncio.get_running_loop(), {})
        connection = getattr(graphs.get("saver"), "conn", None)
        if connection is not None:
            await connection.close()


def cut_short_step(snapshot) -> dict | None:
    """The config to fork a resumed run from when its last step was cut short without a trace LangGraph
    resumes: a task cancelled after writing part of its output (its state update without the ``Send``s of
    its edge) leaves an error and no next node, so continuing would end the run unfinished. Such a step
    is run again from the checkpoint before it; otherwise None (continue from the last checkpoint)."""
    stalled = not snapshot.next and any(task.error is not None for task in snapshot.tasks)
    return snapshot.parent_config if stalled and snapshot.parent_config else None
