"""Which form of memory pays: outcome counts per channel, per namespace, model and scope, in SQL.

A *channel* is the form in which experience reaches a model: ``none`` (no memory), ``demos`` (verified
trajectories as earlier chat turns), ``notes`` (distilled items in the system message), ``demos+notes``,
``adapter`` (a LoRA adapter trained on the namespace's verified replies, local models only) or
``adapter+demos``. Every checked question credits the channel its samples were drawn with, so the counts
are the Beta posteriors a Thompson sampler reads (``graphs/context.py``). A question counts once, its
samples' outcomes split between successes and failures (``credit_question``): samples of one question share
its difficulty, so eight failures on one hard question are one failure of the channel, not eight (counts are
fractional). Rows are keyed by namespace, model and scope (the environment, or ``general``), so what pays
for one model or kind of task is learned apart.

Counts are statistics, not content: ``pooled`` sums them over the *other* namespaces of a model and scope,
the prior a new namespace starts from (what pays on this model is tried first). Content (demonstrations,
notes, adapters) never crosses namespaces this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, UniqueConstraint, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database, add_to_counters, retry_locked
from .items import utcnow

CHANNELS: tuple[str, ...] = ("none", "demos", "notes", "demos+notes", "adapter", "adapter+demos")
ADAPTER_CHANNELS: tuple[str, ...] = ("adapter", "adapter+demos")  # need an active adapter for the model


class ChannelRow(Base):
    __tablename__ = "memory_channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    successes: Mapped[float] = mapped_column(Float, default=0.0)  # questions (fractional: see the module doc)
    failures: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("namespace", "model", "scope", "channel", name="uq_memory_channels_key"),)


@dataclass(frozen=True)
class ChannelCounts:
    channel: str
    successes: float = 0.0
    failures: float = 0.0

    @property
    def trials(self) -> float:
        return self.successes + self.failures

    @property
    def mean(self) -> float:
        """Posterior mean of the per-sample success rate under a uniform Beta(1, 1) prior."""
        return (self.successes + 1) / (self.trials + 2)


class ChannelStats:
    """Read and credit the per-channel outcome counts (one small table, concurrent writers safe)."""

    def __init__(self, db: Database):
        self.db = db

    def counts(self, namespace: str, model: str, scope: str) -> dict[str, ChannelCounts]:
        with self.db.read() as s:
            rows = s.scalars(select(ChannelRow).where(ChannelRow.namespace == namespace, ChannelRow.model == model,
                                                      ChannelRow.scope == scope))
            found = {r.channel: ChannelCounts(r.channel, r.successes, r.failures) for r in rows}
        return {c: found.get(c, ChannelCounts(c)) for c in CHANNELS}

    def credit(self, namespace: str, model: str, scope: str, channel: str, *, successes: float = 0,
               failures: float = 0) -> ChannelCounts:
        if channel not in CHANNELS:
            raise ValueError(f"unknown memory channel {channel!r}; channels: {', '.join(CHANNELS)}")
        if successes < 0 or failures < 0:
            raise ValueError("channel credit must not be negative")

        def write() -> ChannelCounts:
            key = {"namespace": namespace, "model": model, "scope": scope, "channel": channel}
            with self.db.write() as s:  # added in the database: replicas crediting at once lose nothing
                add_to_counters(s, ChannelRow, key, {"successes": successes, "failures": failures},
                                {"updated_at": utcnow()})
                row = s.execute(select(ChannelRow.successes, ChannelRow.failures).where(
                    *(getattr(ChannelRow, name) == value for name, value in key.items()))).one()
                return ChannelCounts(channel, row.successes, row.failures)

        return retry_locked(write)

    def credit_question(self, namespace: str, model: str, scope: str, channel: str, *, passed: int,
                        drawn: int) -> ChannelCounts | None:
        """One checked question drawn with ``channel``: ``passed`` of its ``drawn`` samples verified. It
        counts once, split: ``passed/drawn`` success and the rest failure (None when nothing was drawn)."""
        if drawn <= 0:
            return None
        return self.credit(namespace, model, scope, channel, successes=passed / drawn,
                           failures=(drawn - passed) / drawn)

    def pooled(self, model: str, scope: str, *, exclude: str | None = None) -> dict[str, ChannelCounts]:
        """Each channel's counts summed over every namespace but ``exclude``, for one model and scope: what
        this model showed elsewhere on this kind of task (the cross-namespace prior's data)."""
        with self.db.read() as s:
            query = (select(ChannelRow.channel, func.sum(ChannelRow.successes), func.sum(ChannelRow.failures))
                     .where(ChannelRow.model == model, ChannelRow.scope == scope).group_by(ChannelRow.channel))
            if exclude is not None:
                query = query.where(ChannelRow.namespace != exclude)
            found = {channel: ChannelCounts(channel, float(wins or 0), float(losses or 0))
                     for channel, wins, losses in s.execute(query)}
        return {c: found.get(c, ChannelCounts(c)) for c in CHANNELS}

    def reset(self, namespace: str) -> int:
        """Forget what a namespace learned about channels (e.g. a demo starting from scratch)."""
        def write() -> int:
            with self.db.write() as s:
                return s.execute(delete(ChannelRow).where(ChannelRow.namespace == namespace)).rowcount or 0

        return retry_locked(write)

    def all(self, namespace: str) -> list[dict]:
        """Every row of a namespace (for the admin tool and benchmarks)."""
        with self.db.read() as s:
            rows = s.scalars(select(ChannelRow).where(ChannelRow.namespace == namespace)
                             .order_by(ChannelRow.model, ChannelRow.scope, ChannelRow.channel))
            return [{"model": r.model, "scope": r.scope, "channel": r.channel, "successes": round(r.successes, 2),
                     "failures": round(r.failures, 2)} for r in rows]
