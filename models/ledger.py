"""The ledger: one record per provider call (model, tokens, cost, latency, error), queryable per run."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .spend import Spend, total_spend


@dataclass
class CallRecord:
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    run_id: str | None = None
    subtask: str | None = None
    role: str | None = None
    attempt: int = 1
    cost_known: bool = True
    adapter: str | None = None  # the LoRA adapter GGUF a local model decoded with
    started_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict:
        data = asdict(self)
        data["total_tokens"] = self.total_tokens
        return data


Listener = Callable[[CallRecord], None]
FORGOTTEN_RUNS = 10_000  # run ids remembered as forgotten (late records of them are not kept)


class Ledger:
    """Thread-safe, append-only list of call records with optional listeners (e.g. a SQL writer)."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._by_run: dict[str, list[CallRecord]] = {}  # per-run queries stay fast in a long-lived process
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._forgotten: dict[str, None] = {}  # insertion-ordered, at most FORGOTTEN_RUNS run ids

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every new record; returns a function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def record(self, record: CallRecord) -> CallRecord:
        with self._lock:
            # A late record of a forgotten run (a cancelled call settling after the run ended) still goes
            # to the listeners (the run store) but is not kept: forgetting must bound memory.
            if record.run_id is None or record.run_id not in self._forgotten:
                self._records.append(record)
                if record.run_id is not None:
                    self._by_run.setdefault(record.run_id, []).append(record)
            # a listener subscribed more than once (one run store shared by several agents) hears each record once
            listeners = list(dict.fromkeys(self._listeners))
        for listener in listeners:
            listener(record)
        return record

    def calls(
        self, *, run_id: str | None = None, subtask: str | None = None, role: str | None = None,
        model: str | None = None,
    ) -> list[CallRecord]:
        """The records matching every filter given (None matches anything)."""
        wanted = {"subtask": subtask, "role": role, "model": model}
        with self._lock:
            records = list(self._records if run_id is None else self._by_run.get(run_id, ()))
        return [r for r in records if all(v is None or getattr(r, k) == v for k, v in wanted.items())]

    def forget(self, run_id: str) -> int:
        """Drop a finished run's records from memory (a long-running service's runs live on in SQL);
        records of it that arrive later are not kept either. Returns how many records were dropped."""
        with self._lock:
            self._forgotten[run_id] = None
            while len(self._forgotten) > FORGOTTEN_RUNS:
                self._forgotten.pop(next(iter(self._forgotten)))
            dropped = self._by_run.pop(run_id, [])
            if dropped:
                gone = {id(r) for r in dropped}
                self._records = [r for r in self._records if id(r) not in gone]
        return len(dropped)

    def totals(self, **filters: str | None) -> Spend:
        """What the matching calls spent (filters as for ``calls``)."""
        return total_spend(self.calls(**filters))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._by_run.clear()
            self._forgotten.clear()


_default_ledger = Ledger()


def default_ledger() -> Ledger:
    """The process-wide ledger that gateways use unless given their own."""
    return _default_ledger
