"""Budgets: hard caps on tokens, USD, calls and wall seconds.

A call first *reserves* what it could spend at most (prompt tokens + max_tokens, their price, one
call); the reservation fails with ``BudgetExceeded`` if it does not fit in what is left, so the call
is never made. After the call the reservation is *settled* with what was really spent. All of this
happens under one lock per budget tree, so the cap holds under any concurrency (threads or tasks).

``budget.child(max_tokens=...)`` makes a sub-budget (e.g. for one subtask): spending in a child is
also spent in its parent, and a child can never spend more than its parent has left.
"""

from __future__ import annotations

import math
import threading
import time

from seasoned.errors import BudgetExceeded

from .spend import Spend


def check_cap(label: str, value: object) -> None:
    """A cap is None (no cap) or a finite number >= 0. NaN compares false with everything, so a NaN cap
    would cap nothing; infinity is spelled None. ``ValueError`` (``TypeError`` for a non-number) names it."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"budget {label} must be a number or None, got {type(value).__name__} {value!r:.60}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"budget {label} must be a finite number (None means no cap), got {value}")
    if value < 0:
        raise ValueError(f"budget {label} must be >= 0, got {value}")


class Reservation:
    """What one call holds of a budget (and its ancestors) until it is settled: (tokens, usd, calls)."""

    def __init__(self, budget: Budget, amount: tuple[int, float, int]):
        self.budget = budget
        self.amount = amount
        self.settled = False


class Budget:
    def __init__(
        self,
        max_tokens: int | None = None,
        max_usd: float | None = None,
        max_calls: int | None = None,
        max_seconds: float | None = None,
        *,
        name: str = "budget",
        parent: Budget | None = None,
    ):
        for label, value in (("max_tokens", max_tokens), ("max_usd", max_usd),
                             ("max_calls", max_calls), ("max_seconds", max_seconds)):
            check_cap(label, value)
        self.max_tokens = max_tokens
        self.max_usd = max_usd
        self.max_calls = max_calls
        self.max_seconds = max_seconds
        self.name = name
        self.parent = parent
        self._lock: threading.RLock = parent._lock if parent else threading.RLock()
        self.started_at = time.monotonic()
        own_deadline = self.started_at + max_seconds if max_seconds is not None else math.inf
        self.deadline = min(own_deadline, parent.deadline) if parent else own_deadline
        self.spent = Spend()
        self.reserved = Spend()

    # --- construction -------------------------------------------------------------------------
    def child(self, max_tokens: int | None = None, max_usd: float | None = None, max_calls: int | None = None,
              max_seconds: float | None = None, *, name: str = "child") -> Budget:
        """A sub-budget whose spending also counts here."""
        return Budget(max_tokens, max_usd, max_calls, max_seconds, name=name, parent=self)

    # --- queries --------------------------------------------------------------------------------
    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def remaining_tokens(self) -> float:
        """Tokens this budget (and its ancestors) still allow, reservations held back."""
        with self._lock:
            own = math.inf if self.max_tokens is None else self.max_tokens - self.spent.tokens - self.reserved.tokens
            return min(own, self.parent.remaining_tokens()) if self.parent else own

    def remaining_usd(self) -> float:
        with self._lock:
            own = math.inf if self.max_usd is None else self.max_usd - self.spent.usd - self.reserved.usd
            return min(own, self.parent.remaining_usd()) if self.parent else own

    def remaining_calls(self) -> float:
        with self._lock:
            own = math.inf if self.max_calls is None else self.max_calls - self.spent.calls - self.reserved.calls
            return min(own, self.parent.remaining_calls()) if self.parent else own

    def exhausted(self) -> bool:
        return (self.remaining_tokens() <= 0 or self.remaining_calls() <= 0 or self.remaining_usd() <= 0
                or self.seconds_left() <= 0)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "name": self.name,
                "max_tokens": self.max_tokens, "max_usd": self.max_usd,
                "max_calls": self.max_calls, "max_seconds": self.max_seconds,
                "spent_tokens": self.spent.tokens, "spent_usd": self.spent.usd, "spent_calls": self.spent.calls,
                "elapsed_s": round(time.monotonic() - self.started_at, 3),
            }

    # --- reserve / settle -----------------------------------------------------------------------
    def reserve(self, tokens: int, usd: float = 0.0, calls: int = 1) -> Reservation:
        """Hold ``tokens``/``usd``/``calls`` for one call, or raise ``BudgetExceeded`` (nothing held)."""
        with self._lock:
            self._check(tokens, usd, calls)
            node: Budget | None = self
            while node is not None:
                node.reserved.count(tokens, usd, calls)
                node = node.parent
        return Reservation(self, (tokens, usd, calls))

    def settle(self, reservation: Reservation, tokens: int, usd: float = 0.0, calls: int = 1) -> None:
        """Release a reservation and charge what the call really spent (idempotent)."""
        held_tokens, held_usd, held_calls = reservation.amount
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            node: Budget | None = reservation.budget
            while node is not None:
                node.reserved.count(-held_tokens, -held_usd, -held_calls)
                node.spent.count(tokens, usd, calls)
                node = node.parent

    def charge(self, tokens: int = 0, usd: float = 0.0, calls: int = 0) -> None:
        """Count spending that happened elsewhere (e.g. before a resumed run was killed)."""
        with self._lock:
            node: Budget | None = self
            while node is not None:
                node.spent.count(tokens, usd, calls)
                node = node.parent

    def _check(self, tokens: int, usd: float, calls: int) -> None:
        if time.monotonic() >= self.deadline:
            raise BudgetExceeded(f"{self.name}: no wall-clock time left (max_seconds)", limit="seconds")
        checks = (
            ("tokens", tokens, self.remaining_tokens()),
            ("USD", usd, self.remaining_usd()),
            ("calls", calls, self.remaining_calls()),
        )
        for limit, requested, remaining in checks:
            if requested > remaining:
                raise BudgetExceeded(
                    f"{self.name}: this call could use {requested:g} {limit} but only "
                    f"{max(remaining, 0):g} are left",
                    limit=limit, requested=requested, remaining=max(remaining, 0),
                )
