"""Per-call handle shared between the gateway and an in-process provider.

The gateway sets one before each call; the local provider reads it to stop generating when the call
is cancelled (first-finish races) and to report how many tokens it produced up to then, so that
cancelled work is still accounted.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class CallHandle:
    cancelled: threading.Event = field(default_factory=threading.Event)
    completion_tokens: int = 0  # tokens generated so far (in-process providers update it)
    # Prompt tokens charged if the call fails or is cancelled after being sent: the gateway's estimate
    # for remote providers; an in-process provider sets it only once it really starts processing.
    prompt_tokens: int | None = None


_current: ContextVar[CallHandle | None] = ContextVar("seasoned_call_handle", default=None)


def current_handle() -> CallHandle | None:
    return _current.get()


def set_handle(handle: CallHandle):
    return _current.set(handle)


def reset_handle(token) -> None:
    _current.reset(token)
