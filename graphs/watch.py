"""Acting episodes made visible: every model turn of an episode becomes a ``turn`` event (the raw reply,
the action or why there is none, the observation) and every finished episode an ``episode`` event, each
with the id of the candidate it belongs to, so long episodes can be followed live (``seasoned run``) and
are recorded with the run (``seasoned runs show``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_candidate: ContextVar[str | None] = ContextVar("seasoned_candidate", default=None)


@contextmanager
def candidate_scope(candidate_id: str) -> Iterator[None]:
    """Events written inside this block (and in tasks it starts) name ``candidate_id``."""
    token = _candidate.set(candidate_id)
    try:
        yield
    finally:
        _candidate.reset(token)


def stream_writer():
    """The running graph node's custom-event writer (a no-op outside a graph)."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except (RuntimeError, ImportError):
        return lambda _chunk: None


def one_line(text: str, width: int = 100) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def turn_writer(write: Callable[[dict], None], task: Any = None) -> Callable[[dict], None]:
    """The actor's ``on_turn``: each turn as a ``turn`` event of the current candidate."""
    task_id = getattr(task, "id", None)

    def on_turn(turn: dict) -> None:
        write({"event": "turn", "candidate": _candidate.get(), "task": task_id, **turn})

    return on_turn


class Watched:
    """An interactive environment whose sessions report each finished episode."""

    def __init__(self, env: Any, write: Any):
        self._env, self._write = env, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    async def open(self, task: Any) -> Any:
        return WatchedSession(await self._env.open(task), self._write)


class WatchedSession:
    def __init__(self, session: Any, write: Any):
        self._session, self._write, self._index = session, write, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def step(self, action: Any) -> Any:
        self._index += 1
        return await self._session.step(action)

    async def verify(self) -> Any:
        verdict = await self._session.verify()
        if verdict is not None:
            self._write({"event": "episode", "candidate": _candidate.get(), "task": getattr(self._session.task, "id", None),
                         "steps": self._index, "passed": bool(verdict.passed), **verdict_summary(verdict.details)})
        return verdict


def verdict_summary(details: Any, limit: int = 20) -> dict:
    """What a person wants from a verdict's details: the failing tests (SWE's FAIL_TO_PASS and
    PASS_TO_PASS lists, at most ``limit``) and the reason, when there is one."""
    if not isinstance(details, dict):
        return {"reason": one_line(details, 200)} if details else {}
    failing = [str(t) for key in ("FAIL_TO_PASS", "PASS_TO_PASS")
               for t in ((details.get(key) or {}).get("failing") or []) if isinstance(details.get(key), dict)]
    out: dict = {"failing_tests": failing[:limit]} if failing else {}
    if len(failing) > limit:
        out["more_failing"] = len(failing) - limit
    if details.get("reason"):
        out["reason"] = one_line(details["reason"], 200)
    return out
