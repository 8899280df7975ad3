"""Running the async gateway from synchronous code.

One background event loop per process serves every sync call, so clients that litellm caches per
loop stay valid, and a sync call works even from inside a running loop (e.g. a notebook).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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


def iterate_sync(make: Callable[[], AsyncIterator[T]], stop_wait_s: float = 1.5) -> Iterator[T]:
    """Iterate an async generator from synchronous code, on the background loop. Leaving the loop early
    (or Ctrl-C) cancels the generator, and waits up to ``stop_wait_s`` for it to clean up."""
    items: queue.Queue = queue.Queue()
    finished = threading.Event()  # the generator has cleaned up (a cancelled future says nothing of it)

    async def pump() -> None:
        try:
            async for item in make():
                items.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            items.put(exc)
        finally:
            items.put(_DONE)
            finished.set()

    future = asyncio.run_coroutine_threadsafe(pump(), _background_loop())
    try:
        while (item := items.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # Ctrl-C or the consumer stopped: cancel the generator and let it record itself
        if not future.done():
            future.cancel()
            finished.wait(stop_wait_s)


_DONE = object()
