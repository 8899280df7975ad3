"""Running the async gateway from synchronous code.

One background event loop per process serves every sync call, so clients that litellm caches per
loop stay valid, and a sync call works even from inside a running loop (e.g. a notebook).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="seasoned-sync-loop", daemon=True).start()
        return _loop


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run a coroutine to completion on the background loop and return its result."""
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("run_sync was called from the gateway's own loop; await the coroutine instead")
    future = asyncio.run_coroutine_threadsafe(awaitable, loop)  # type: ignore[arg-type]
    try:
        return future.result()
    except KeyboardInterrupt:
        future.cancel()
        raise
