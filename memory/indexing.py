"""Keeping Chroma in line with SQL: sync what is not indexed, remove orphan vectors, rebuild.

Every write commits to SQL first with ``indexed = False``, then updates Chroma, then marks the row
indexed (only if its version did not move meanwhile). Opening a bank indexes whatever is not indexed
and removes vectors that have no active row, so a process killed at any point loses no committed
item and leaves no orphan vector.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select, update

from . import embedding
from .core import BankCore, embed_text
from .db import ItemRow, NamespaceRow, retry_locked

SYNC_BATCH = 256


class Indexing(BankCore):
    def sync_index(self, namespace: str | None = None, vectors: dict[tuple[str, int], np.ndarray] | None = None,
                   check_orphans: bool = True, full: bool = False) -> int:
        """Bring Chroma in line with SQL for rows marked not indexed; returns how many rows were synced.

        ``vectors`` maps (id, version) to an embedding already computed by the caller. ``check_orphans``
        compares counts (and ids when they differ); ``full`` always compares ids (done on open).
        """
        vectors = vectors or {}
        synced = 0
        if namespace is None:
            with self.db.read() as s:
                pending = list(s.scalars(select(ItemRow.namespace).where(ItemRow.indexed.is_(False)).distinct()))
                known = list(s.scalars(select(NamespaceRow.namespace)))
            namespaces = sorted(set(pending) | (set(known) | set(self.index.namespaces())
                                            if check_orphans or full else set()))
        else:
            namespaces = [namespace]
        for ns in namespaces:
            synced += self._sync_namespace(ns, vectors)
            if check_orphans or full:
                self._check_orphans(ns, full)
        return synced

    def _sync_namespace(self, ns: str, vectors: dict[tuple[str, int], np.ndarray]) -> int:
        synced = 0
        while True:
            with self.db.read() as s:
                rows = list(s.execute(
                    select(ItemRow.id, ItemRow.version, ItemRow.status, ItemRow.kind, ItemRow.title, ItemRow.content)
                    .where(ItemRow.namespace == ns, ItemRow.indexed.is_(False)).limit(SYNC_BATCH)
                ))
            if not rows:
                return synced
            active = [r for r in rows if r.status == "active"]
            gone = [r.id for r in rows if r.status != "active"]
            if active:
                missing = [r for r in active if (r.id, r.version) not in vectors]
                fresh = embedding.embed([embed_text(r.title, r.content) for r in missing])
                got = {(r.id, r.version): v for r, v in zip(missing, fresh)}
                got.update({k: vectors[k] for k in ((r.id, r.version) for r in active) if k in vectors})
                self.index.upsert(ns, [r.id for r in active],
                                  np.stack([got[(r.id, r.version)] for r in active]),
                                  [{"kind": r.kind} for r in active])
            if gone:
                self.index.delete(ns, gone)

            def mark(rows: list = rows) -> None:
                with self.db.write() as s:
                    for r in rows:
                        s.execute(update(ItemRow).where(ItemRow.id == r.id, ItemRow.version == r.version)
                                  .values(indexed=True))

            retry_locked(mark)
            synced += len(rows)

    def _check_orphans(self, ns: str, full: bool = False) -> None:
        """Vectors without an active row are removed; active rows without a vector are re-indexed."""
        with self.db.read() as s:
            expected = s.scalar(select(func.count()).select_from(ItemRow).where(
                ItemRow.namespace == ns, ItemRow.status == "active", ItemRow.indexed.is_(True))) or 0
            pending = s.scalar(select(func.count()).select_from(ItemRow).where(
                ItemRow.namespace == ns, ItemRow.indexed.is_(False))) or 0
        if not full and pending == 0 and self.index.count(ns) == expected:
            return
        in_index = set(self.index.ids(ns))  # read the index first: a vector only exists after its row
        with self.db.read() as s:
            active = set(s.scalars(select(ItemRow.id).where(ItemRow.namespace == ns, ItemRow.status == "active")))
        orphans = sorted(in_index - active)
        if orphans:
            self.index.delete(ns, orphans)
        lost = sorted(active - in_index)
        if lost:
            def unmark() -> None:
                with self.db.write() as s:
                    s.execute(update(ItemRow).where(ItemRow.id.in_(lost)).values(indexed=False))

            retry_locked(unmark)
            self._sync_namespace(ns, {})

    def reindex(self, namespace: str | None = None, *, all_namespaces: bool = False) -> int:
        """Rebuild Chroma from SQL (the namespace, or every namespace); returns how many items were indexed."""
        namespaces = self.namespaces() if all_namespaces else [self._ns(namespace)]
        for ns in namespaces:
            self.index.drop(ns)

            def unmark(ns: str = ns) -> None:
                with self.db.write() as s:
                    s.execute(update(ItemRow).where(ItemRow.namespace == ns).values(indexed=False))

            retry_locked(unmark)
        return sum(self.sync_index(ns) for ns in namespaces)

