"""Tags every call carries (run, subtask, role), set explicitly or inherited from the async context.

A graph node wraps its work in ``with call_tags(role="solver"):`` and every gateway call made inside,
including calls in tasks it spawns, is tagged, so spend is visible per node and not only per run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CallTags:
    run_id: str | None = None
    subtask: str | None = None
    role: str | None = None

    def merged(self, **overrides: str | None) -> CallTags:
        """These tags with the given non-None values replacing them."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


_current: ContextVar[CallTags] = ContextVar("seasoned_call_tags", default=CallTags())


def current_tags() -> CallTags:
    return _current.get()


@contextlib.contextmanager
def call_tags(*, run_id: str | None = None, subtask: str | None = None, role: str | None = None) -> Iterator[CallTags]:
    """Tag every gateway call made inside this block (nested blocks override field by field)."""
    tags = _current.get().merged(run_id=run_id, subtask=subtask, role=role)
    token = _current.set(tags)
    try:
        yield tags
    finally:
        _current.reset(token)
