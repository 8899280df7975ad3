"""How often each verifier's acceptances turned out wrong, so the stop rule can discount them.

Verifiers are imperfect (an LLM judge says "correct" to wrong answers; even unit tests miss bugs).
Every time a verifier accepted a run's final answer and the true outcome becomes known later (a
hidden check, user feedback), its record is updated; ``precision(name)`` is the posterior mean of
"an acceptance is right" under a Beta prior chosen per kind of verifier.

Counts read from SQL are kept for ``CACHE_S`` seconds (every run's stop rule reads them; they change only
when an outcome becomes known): this process's own updates are seen at once, another process's within that.
"""

from __future__ import annotations

import threading
import time

from seasoned.memory.db import Database, add_to_counters, retry_locked
from seasoned.settings import default_db_url
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Beta priors (right, wrong) per verifier kind: environment checks are trusted, judges are not.
PRIORS = {"env": (19.0, 1.0), "judge": (4.0, 1.0), "agreement": (3.0, 1.0)}
CACHE_S = 5.0
CACHE_KEPT = 10_000

# (database URL, namespace, verifier) -> (monotonic time read, (accepts, false accepts)); shared by every
# VerifierStats of the process, so one's update is seen by the others at once.
_cache: dict[tuple[str, str, str], tuple[float, tuple[int, int]]] = {}
_cache_lock = threading.Lock()


class _Base(DeclarativeBase):
    pass


class VerifierStatRow(_Base):
    __tablename__ = "verifier_stats"

    namespace: Mapped[str] = mapped_column(String(256), primary_key=True)
    verifier: Mapped[str] = mapped_column(String(256), primary_key=True)
    accepts: Mapped[int] = mapped_column(Integer, default=0)
    false_accepts: Mapped[int] = mapped_column(Integer, default=0)


def verifier_kind(name: str) -> str:
    return name.split(":", 1)[0]


class VerifierStats:
    """Per-namespace acceptance records, in SQL when a database is given, else in memory."""

    def __init__(self, db: Database | None = None):
        self.db = db
        self._memory: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()
        if db is not None:
            _Base.metadata.create_all(db.write_engine)

    @classmethod
    def open(cls, url: str | None = None) -> VerifierStats:
        return cls(Database(url or default_db_url()))

    def counts(self, namespace: str, verifier: str) -> tuple[int, int]:
        if self.db is None:
            with self._lock:
                accepts, false_accepts = self._memory.get((namespace, verifier), [0, 0])
            return accepts, false_accepts
        key, now = (self.db.url, namespace, verifier), time.monotonic()
        with _cache_lock:
            cached = _cache.get(key)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        with self.db.read() as session:
            row = session.get(VerifierStatRow, (namespace, verifier))
            found = (row.accepts, row.false_accepts) if row else (0, 0)
        with _cache_lock:
            if len(_cache) >= CACHE_KEPT:
                _cache.clear()
            _cache[key] = (now, found)
        return found

    def precision(self, namespace: str, verifier: str) -> float:
        right_prior, wrong_prior = PRIORS.get(verifier_kind(verifier), (1.0, 1.0))
        accepts, false_accepts = self.counts(namespace, verifier)
        right = accepts - false_accepts
        return (right + right_prior) / (accepts + right_prior + wrong_prior)

    def record(self, namespace: str, verifier: str, *, correct: bool) -> None:
        """One acceptance by ``verifier`` whose truth is now known."""
        if self.db is None:
            with self._lock:
                entry = self._memory.setdefault((namespace, verifier), [0, 0])
                entry[0] += 1
                entry[1] += not correct
            return

        def write() -> None:
            with self.db.write() as session:
                add_to_counters(session, VerifierStatRow, {"namespace": namespace, "verifier": verifier},
                                {"accepts": 1, "false_accepts": 0 if correct else 1})

        retry_locked(write)
        with _cache_lock:
            _cache.pop((self.db.url, namespace, verifier), None)
