"""Cores lent by the local models to work that runs beside them in this process family.

llama.cpp's threads spin while they wait for each other, so a model decoding with as many threads as there
are cores, beside other busy work, can become many times slower. Work that the product itself starts beside
the models (a background adapter training) lends itself cores for its duration; the local models' engines
decode with that many fewer threads meanwhile (``BatchEngine`` re-reads ``usable_threads`` at each step).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lent = 0  # cores lent to work of this process's that runs beside the models (adapter training)
_lent_lock = threading.Lock()


@contextmanager
def lend_cores(count: int) -> Iterator[None]:
    """While the block runs, local models decode with ``count`` fewer threads (at least one): work started
    beside them (a background adapter training) gets those cores instead of fighting llama.cpp's spinning
    threads for them (on 2 cores, 64 tokens took 17-22 s with 2 threads beside a 1-thread training, 0.7-1.4 s
    with 1)."""
    global _lent
    with _lent_lock:
        _lent += max(0, count)
    try:
        yield
    finally:
        with _lent_lock:
            _lent -= max(0, count)


def usable_threads(configured: int) -> int:
    """``configured`` threads less the cores lent away (at least one)."""
    return max(1, configured - _lent)
