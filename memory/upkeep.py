"""Upkeep: explicit changes (edit, pin, archive, restore, delete, supersede), outcomes that move an
item's utility, allocation records, and pruning. Pinned and human-written items are never changed by
the curator (``actor="curator"``); every change is a new version with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from seasoned.errors import InvalidItemError, ItemNotFound, ProtectedItemError
from sqlalchemy import select
from sqlalchemy.orm import Session

from .core import row_to_item
from .db import ItemRow, VersionRow, retry_locked
from .items import (
    EDITABLE_FIELDS,
    MAX_COUNT,
    AddResult,
    MemoryItem,
    as_utc,
    bounded_count,
    describe_error,
    utcnow,
    utility_of,
)
from .merge import Decision
from .writes import Writes


class Upkeep(Writes):
    confirm_after: int

    def _mutate(self, item_id: str, namespace: str | None,
                fn: Callable[[Session, ItemRow], None]) -> MemoryItem:
        ns = self._ns(namespace)

        def write() -> MemoryItem:
            with self.db.write() as s:
                row = self._row(s, item_id, ns)
                fn(s, row)
                return row_to_item(row)

        item = retry_locked(write)
        self.sync_index(ns, check_orphans=False)
        return item

    def edit(self, item_id: str, changes: dict[str, Any], *, reason: str = "human edit", actor: str = "human",
             namespace: str | None = None) -> MemoryItem:
        """Change editable fields (title, content, kind, tags, task_signature, data, verified): a new version."""
        unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
        if unknown:
            raise InvalidItemError(f"cannot edit field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE_FIELDS)}")
        current = self.get(item_id, namespace=namespace)
        try:
            candidate = MemoryItem.model_validate({**current.model_dump(), **changes})
        except (TypeError, ValueError) as err:  # pydantic's ValidationError is a ValueError
            raise InvalidItemError(f"invalid edit: {describe_error(err)}") from None
        if actor == "curator" and current.protected:
            raise ProtectedItemError(f"item {item_id} is pinned or human-written: the curator may not change it")
        values = {k: getattr(candidate, k) for k in changes}

        def apply(s: Session, row: ItemRow) -> None:
            if any(getattr(row, k) != v for k, v in values.items()):
                self._change(s, row, reason, actor, **values)

        return self._mutate(item_id, namespace, apply)

    def pin(self, item_id: str, pinned: bool = True, *, namespace: str | None = None) -> MemoryItem:
        def apply(s: Session, row: ItemRow) -> None:
            if row.pinned != pinned:
                self._change(s, row, "pinned" if pinned else "unpinned", "human", pinned=pinned)

        return self._mutate(item_id, namespace, apply)

    def archive(self, item_id: str, reason: str = "archived", *, actor: str = "human",
                namespace: str | None = None) -> MemoryItem:
        def apply(s: Session, row: ItemRow) -> None:
            if actor == "curator" and (row.pinned or row.source == "human"):
                raise ProtectedItemError(f"item {item_id} is pinned or human-written: the curator may not archive it")
            if row.status != "archived":
                self._change(s, row, reason, actor, status="archived")

        return self._mutate(item_id, namespace, apply)

    def restore(self, item_id: str, *, namespace: str | None = None) -> MemoryItem:
        def apply(s: Session, row: ItemRow) -> None:
            if row.status != "active":
                self._change(s, row, "restored", "human", status="active", superseded_by=None)

        return self._mutate(item_id, namespace, apply)

    def delete(self, item_id: str, *, hard: bool = False, namespace: str | None = None) -> None:
        """Archive the item; ``hard=True`` removes it and its history for good (vector first, row last,
        with the row marked not indexed before: a crash in between re-indexes, never orphans)."""
        if not hard:
            self.archive(item_id, "deleted (archived)", namespace=namespace)
            return
        ns = self._ns(namespace)

        def unmark() -> None:
            with self.db.write() as s:
                self._row(s, item_id, ns).indexed = False

        retry_locked(unmark)
        self.index.delete(ns, [item_id])

        def remove() -> None:
            with self.db.write() as s:
                s.delete(self._row(s, item_id, ns))
                s.execute(VersionRow.__table__.delete().where(VersionRow.item_id == item_id))
                self.bump(s, [ns])

        retry_locked(remove)

    def supersede(self, old_id: str, new_item: MemoryItem | dict, *, reason: str = "contradiction",
                  actor: str = "curator", namespace: str | None = None) -> AddResult:
        """Add ``new_item`` and mark ``old_id`` superseded by it (the old one stays readable)."""
        ns = self._ns(namespace)
        old = self.get(old_id, namespace=ns)
        if actor == "curator" and old.protected:
            raise ProtectedItemError(f"item {old_id} is pinned or human-written: the curator may not supersede it")
        _, prepared = self._prepare([new_item], ns, dedup=False)
        new, vec, _ = prepared[0]
        decision = Decision("CONTRADICT", old, None, reason=reason)
        return self._apply(ns, [(new, vec, decision)], actor)[0]

    # --- outcomes, allocation records, pruning -------------------------------------------------------
    def record_outcome(self, item_ids: Sequence[str], success: bool, *, namespace: str | None = None) -> list[MemoryItem]:
        """The items were used in a run that succeeded (or failed): update their utility statistics.
        Unverified items confirmed by ``confirm_after`` successes (more than failures) become verified."""
        ns = self._ns(namespace)
        ids = list(dict.fromkeys(item_ids))

        def write() -> list[MemoryItem]:
            with self.db.write() as s:
                # FOR UPDATE (PostgreSQL; SQLite's writes are serial already): replicas crediting the same
                # item at once wait for each other instead of losing an increment
                rows = {r.id: r for r in s.scalars(select(ItemRow).where(ItemRow.id.in_(ids), ItemRow.namespace == ns)
                                                   .with_for_update())}
                missing = [i for i in ids if i not in rows]
                if missing:
                    raise ItemNotFound(f"no memory item {missing[0]!r} in namespace {ns!r}")
                now = utcnow()
                for row in rows.values():
                    if success:  # saturating, as every use counter
                        row.times_succeeded = min(bounded_count(row.times_succeeded) + 1, MAX_COUNT)
                    else:
                        row.times_failed = min(bounded_count(row.times_failed) + 1, MAX_COUNT)
                    row.utility = utility_of(row.times_succeeded, row.times_failed)
                    row.last_used_at = now
                    if (not row.verified and row.times_succeeded >= self.confirm_after
                            and row.times_succeeded > row.times_failed):
                        self._change(s, row, f"confirmed by {row.times_succeeded} successful runs", "system",
                                     verified=True)
                return [row_to_item(rows[i]) for i in ids]

        items = retry_locked(write)
        self.sync_index(ns, check_orphans=False)
        return items

    def record_allocation(self, subtask_kind: str, *, budget: dict[str, float], spent: dict[str, float],
                          success: bool, difficulty: float | None = None, model: str | None = None,
                          run_id: str | None = None, namespace: str | None = None,
                          extra: dict[str, Any] | None = None) -> MemoryItem:
        """Record what a subtask of ``subtask_kind`` was given, what it spent and whether it succeeded."""
        data = {"subtask_kind": subtask_kind, "budget": dict(budget), "spent": dict(spent), "success": bool(success),
                "difficulty": difficulty, "model": model, **(extra or {})}
        content = (f"subtask {subtask_kind}: budget {data['budget']}, spent {data['spent']}, "
                   f"{'succeeded' if success else 'failed'}" + (f", difficulty {difficulty}" if difficulty is not None else ""))
        item = MemoryItem(kind="allocation", title=f"allocation {subtask_kind}", content=content, data=data,
                          task_signature=subtask_kind, source="success" if success else "failure",
                          run_ids=[run_id] if run_id else [], verified=bool(success))  # a failed run: never verified
        return self.add(item, namespace=namespace, dedup=False, actor="system").item

    def allocations(self, subtask_kind: str | None = None, *, limit: int = 1000,
                    namespace: str | None = None) -> list[dict[str, Any]]:
        """Allocation records (newest first) as dicts, for the learned allocator."""
        ns = self._ns(namespace)
        query = select(ItemRow).where(ItemRow.namespace == ns, ItemRow.kind == "allocation", ItemRow.status == "active")
        if subtask_kind is not None:
            query = query.where(ItemRow.task_signature == subtask_kind)
        with self.db.read() as s:
            rows = s.scalars(query.order_by(ItemRow.created_at.desc()).limit(limit))
            return [{**(r.data or {}), "id": r.id, "run_ids": list(r.run_ids), "created_at": r.created_at}
                    for r in rows]

    def prune(self, *, namespace: str | None = None, min_failures: int = 3, max_utility: float = 0.34,
              stale_days: float = 90.0, dry_run: bool = False) -> list[tuple[str, str]]:
        """Archive items that keep failing (>= ``min_failures`` and utility <= ``max_utility``) or are stale
        (no success and not used for ``stale_days``). Pinned and human items are kept. Returns (id, reason)."""
        ns = self._ns(namespace)
        cutoff = utcnow() - timedelta(days=stale_days)
        with self.db.read() as s:
            rows = list(s.scalars(select(ItemRow).where(
                ItemRow.namespace == ns, ItemRow.status == "active", ItemRow.pinned.is_(False),
                ItemRow.source != "human", ItemRow.kind != "allocation")))
        chosen: list[tuple[str, str]] = []
        for r in rows:
            last = as_utc(r.last_used_at) or as_utc(r.created_at)
            if r.times_failed >= min_failures and r.utility <= max_utility:
                chosen.append((r.id, f"prune: failing ({r.times_failed} failed, {r.times_succeeded} succeeded)"))
            elif r.times_succeeded == 0 and last is not None and last < cutoff:
                chosen.append((r.id, f"prune: stale (unused since {last.date().isoformat()})"))
        if chosen and not dry_run:
            def write() -> None:
                with self.db.write() as s:
                    for item_id, reason in chosen:
                        row = s.get(ItemRow, item_id)
                        if row is not None and row.status == "active":
                            self._change(s, row, reason, "system", status="archived")

            retry_locked(write)
            self.sync_index(ns, check_orphans=False)
        return chosen
