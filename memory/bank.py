"""The memory bank: SQL is the source of truth, Chroma the rebuildable vector index.

Every write commits to SQL first with ``indexed = False``, then updates Chroma, then marks the row
indexed (only if its version did not move meanwhile). Opening a bank indexes whatever is not indexed
and removes vectors that have no active row, so a process killed at any point loses no committed
item and leaves no orphan vector.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from seasoned.models.settings import seasoned_home
from sqlalchemy import Integer, cast, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import embedding
from .channels import ChannelStats
from .db import Database, ItemRow, NamespaceRow, VersionRow, default_db_url, redact, retry_locked
from .errors import InvalidItemError, ItemNotFound, MemoryConfigError, ProtectedItemError
from .index import VectorIndex
from .items import (
    EDITABLE_FIELDS,
    KINDS,
    Action,
    AddResult,
    ItemVersion,
    MemoryItem,
    Retrieved,
    as_utc,
    describe_error,
    utcnow,
    utility_of,
)
from .lexical import LexicalIndex
from .merge import Decision, merge_content, merge_messages, parse_llm_decision, rule_decision

SYNC_BATCH = 256
ADD_BATCH = 256
_SNAPSHOT_FIELDS = ("kind", "title", "content", "tags", "task_signature", "data", "key", "source", "run_ids",
                    "verified", "pinned", "status", "superseded_by")
_NAMESPACE = re.compile(r"^[^\x00-\x1f]{1,256}$")


@dataclass(frozen=True)
class RetrievalWeights:
    """score = semantic*cos + lexical*bm25_normalised + utility*(utility-0.5) - unverified_penalty."""

    semantic: float = 0.6
    lexical: float = 0.3
    utility: float = 0.3
    unverified_penalty: float = 0.1


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace) or not namespace.strip():
        raise MemoryConfigError(f"namespace: expected 1-256 printable characters, got {namespace!r}")
    return namespace


def _row_to_item(row: ItemRow) -> MemoryItem:
    return MemoryItem.model_validate({c: getattr(row, c) for c in MemoryItem.model_fields})


def _item_to_row_fields(item: MemoryItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in MemoryItem.model_fields}


def _snapshot(row: ItemRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _SNAPSHOT_FIELDS}


def _embed_text(title: str, content: str) -> str:
    return f"{title}\n{content}" if title else content


class MemoryBank:
    """Experience memory for one default namespace (every method also takes ``namespace=``)."""

    def __init__(self, db: Database, index: VectorIndex, namespace: str = "default", *,
                 dedup_threshold: float = 0.85, noop_threshold: float = 0.97, llm_threshold: float = 0.6,
                 confirm_after: int = 2, merge_model: str | None = None,
                 weights: RetrievalWeights = RetrievalWeights()):
        self.db = db
        self.index = index
        self.namespace = check_namespace(namespace)
        self.dedup_threshold = dedup_threshold
        self.noop_threshold = noop_threshold
        self.llm_threshold = llm_threshold
        self.confirm_after = confirm_after
        self.merge_model = merge_model
        self.weights = weights
        self.lexical = LexicalIndex()
        self.channels = ChannelStats(db)  # which form of memory pays, per namespace/model/scope
        self._known_namespaces: set[str] = set()

    # --- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, namespace: str = "default", *, chroma_url: str | None = None,
             chroma_path: str | Path | None = None, sync: bool = True, **options: Any) -> MemoryBank:
        """Open (creating if needed) the bank at ``url`` (default ``SEASONED_DB_URL`` or SQLite under
        ``SEASONED_HOME``). Chroma: ``chroma_url`` / ``SEASONED_CHROMA_URL`` (server) or a local folder
        next to the SQLite file (``<file>.chroma``) or ``$SEASONED_HOME/chroma``."""
        import os

        setting = "--db/url" if url else "SEASONED_DB_URL"
        db = Database(url or default_db_url(), setting=setting)
        chroma_url = chroma_url or os.environ.get("SEASONED_CHROMA_URL") or None
        if chroma_path is None and not chroma_url:
            chroma_path = (db.sqlite_path.with_name(db.sqlite_path.name + ".chroma") if db.sqlite_path
                           else seasoned_home() / "chroma")
        try:
            index = VectorIndex(redact(db.url), path=Path(chroma_path) if chroma_path else None, url=chroma_url)
        except Exception:
            db.dispose()
            raise
        bank = cls(db, index, namespace, **options)
        if sync:
            bank.sync_index(full=True)
        return bank

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> MemoryBank:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else check_namespace(namespace)

    def _ensure_namespace(self, namespace: str) -> None:
        if namespace in self._known_namespaces:
            return

        def ensure() -> None:
            with self.db.write() as s:
                if s.get(NamespaceRow, namespace) is None:
                    s.add(NamespaceRow(namespace=namespace, generation=0, created_at=utcnow()))

        try:
            retry_locked(ensure)
        except IntegrityError:
            pass  # created by another process in between
        self._known_namespaces.add(namespace)

    @staticmethod
    def _bump(s: Session, namespaces: Iterable[str]) -> None:
        for ns in set(namespaces):
            s.execute(update(NamespaceRow).where(NamespaceRow.namespace == ns)
                      .values(generation=NamespaceRow.generation + 1))

    @staticmethod
    def _new_version(s: Session, row: ItemRow, reason: str, actor: str) -> None:
        s.add(VersionRow(item_id=row.id, version=row.version, reason=reason, actor=actor,
                         created_at=row.updated_at, snapshot=_snapshot(row)))

    def _change(self, s: Session, row: ItemRow, reason: str, actor: str, **fields: Any) -> None:
        """Apply a content/status change as a new version, queued for re-indexing."""
        for name, value in fields.items():
            setattr(row, name, value)
        row.version += 1
        row.updated_at = utcnow()
        row.indexed = False
        self._new_version(s, row, reason, actor)
        self._bump(s, [row.namespace])

    def _insert(self, s: Session, item: MemoryItem, reason: str, actor: str) -> ItemRow:
        row = ItemRow(**_item_to_row_fields(item), indexed=False)
        s.add(row)
        s.flush()
        self._new_version(s, row, reason, actor)
        self._bump(s, [item.namespace])
        return row

    def _row(self, s: Session, item_id: str, namespace: str) -> ItemRow:
        row = s.get(ItemRow, item_id)
        if row is None or row.namespace != namespace:
            raise ItemNotFound(f"no memory item {item_id!r} in namespace {namespace!r}")
        return row

    # --- index consistency --------------------------------------------------------------------------
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
                fresh = embedding.embed([_embed_text(r.title, r.content) for r in missing])
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

    # --- adding -------------------------------------------------------------------------------------
    def _coerce(self, item: MemoryItem | dict, ns: str) -> MemoryItem:
        try:
            data = item.model_dump() if isinstance(item, MemoryItem) else dict(item)
            data["namespace"] = ns
            return MemoryItem.model_validate(data)
        except Exception as err:
            raise InvalidItemError(f"invalid memory item: {describe_error(err)}") from None

    def _candidates(self, ns: str, item: MemoryItem, vec: np.ndarray, batch: list[tuple[MemoryItem, np.ndarray]],
                    n: int = 8) -> list[tuple[MemoryItem, float]]:
        """Active items of the same kind, most similar first (stored ones and earlier ones of this batch)."""
        hits = dict(self.index.query(ns, vec, n))
        found: list[tuple[MemoryItem, float]] = []
        if hits:
            with self.db.read() as s:
                rows = s.scalars(select(ItemRow).where(ItemRow.id.in_(list(hits)), ItemRow.status == "active",
                                                       ItemRow.kind == item.kind, ItemRow.namespace == ns))
                found = [(_row_to_item(r), hits[r.id]) for r in rows]
        for other, other_vec in batch:
            if other.kind == item.kind:
                found.append((other, float(np.dot(vec, other_vec))))
        found.sort(key=lambda pair: -pair[1])
        return found

    def _decide(self, item: MemoryItem, candidates: list[tuple[MemoryItem, float]]) -> Decision:
        return rule_decision(item, candidates, dedup_threshold=self.dedup_threshold,
                             noop_threshold=self.noop_threshold)

    def add(self, item: MemoryItem | dict, *, namespace: str | None = None, dedup: bool = True,
            actor: str = "curator", model: str | None = None) -> AddResult:
        """Add one item: ADD, UPDATE (merge into a near-duplicate) or NOOP. With ``model`` an LLM
        decides the merge (through the gateway); without, a deterministic rule does."""
        if model is None:
            return self.add_many([item], namespace=namespace, dedup=dedup, actor=actor)[0]
        prepared = self._prepare([item], namespace, dedup)
        ns, (new, vec, candidates) = prepared[0], prepared[1][0]
        decision = self._llm_decide_sync(new, candidates, model)
        return self._apply(ns, [(new, vec, decision)], actor)[0]

    async def aadd(self, item: MemoryItem | dict, *, namespace: str | None = None, dedup: bool = True,
                   actor: str = "curator", model: str | None = None) -> AddResult:
        """Async add; uses ``model`` (or the bank's ``merge_model``) for the merge decision.
        Database and embedding work runs in a thread, so the event loop is never blocked."""
        model = model or self.merge_model
        ns, prepared = await asyncio.to_thread(self._prepare, [item], namespace, dedup)
        new, vec, candidates = prepared[0]
        if model and dedup and candidates and candidates[0][1] >= self.llm_threshold:
            decision = await self._llm_decide_async(new, candidates, model)
        else:
            decision = self._decide(new, candidates)
        results = await asyncio.to_thread(self._apply, ns, [(new, vec, decision)], actor)
        return results[0]

    def _llm_candidates(self, candidates: list[tuple[MemoryItem, float]]) -> list[tuple[MemoryItem, float]]:
        return [c for c in candidates if c[1] >= self.llm_threshold][:3]

    def _llm_decide_sync(self, new: MemoryItem, candidates: list[tuple[MemoryItem, float]], model: str) -> Decision:
        shortlist = self._llm_candidates(candidates)
        if not shortlist:
            return self._decide(new, candidates)
        from seasoned.models import Gateway, SeasonedError

        try:
            reply = Gateway(model).complete(merge_messages(new, shortlist), max_tokens=512, role="curator")
        except SeasonedError as err:
            return self._fallback(new, candidates, f"llm merge failed ({err})")
        return self._from_llm(reply.text, new, shortlist, candidates)

    async def _llm_decide_async(self, new: MemoryItem, candidates: list[tuple[MemoryItem, float]],
                                model: str) -> Decision:
        shortlist = self._llm_candidates(candidates)
        if not shortlist:
            return self._decide(new, candidates)
        from seasoned.models import Gateway, SeasonedError

        try:
            reply = await Gateway(model).acomplete(merge_messages(new, shortlist), max_tokens=512, role="curator")
        except SeasonedError as err:
            return self._fallback(new, candidates, f"llm merge failed ({err})")
        return self._from_llm(reply.text, new, shortlist, candidates)

    def _from_llm(self, text: str, new: MemoryItem, shortlist: list, candidates: list) -> Decision:
        decision = parse_llm_decision(text, new, shortlist)
        return decision or self._fallback(new, candidates, "llm merge output unusable")

    def _fallback(self, new: MemoryItem, candidates: list, why: str) -> Decision:
        decision = self._decide(new, candidates)
        decision.reason = f"{decision.reason} ({why}; deterministic rule applied)"
        return decision

    def _prepare(self, items: Sequence[MemoryItem | dict], namespace: str | None, dedup: bool,
                 embeddings: np.ndarray | None = None):
        ns = self._ns(namespace)
        self._ensure_namespace(ns)
        coerced = [self._coerce(item, ns) for item in items]
        if embeddings is not None:
            vecs = np.asarray(embeddings, dtype=np.float32)
            if vecs.shape != (len(coerced), embedding.DIMENSION):
                raise InvalidItemError(f"embeddings: expected shape ({len(coerced)}, {embedding.DIMENSION}), "
                                       f"got {vecs.shape}")
        else:
            vecs = embedding.embed([item.embed_text() for item in coerced])
        prepared = []
        batch: list[tuple[MemoryItem, np.ndarray]] = []
        for item, vec in zip(coerced, vecs):
            use_dedup = dedup and item.kind != "allocation"
            candidates = self._candidates(ns, item, vec, batch) if use_dedup else []
            prepared.append((item, vec, candidates))
            batch.append((item, vec))
        return ns, prepared

    def add_many(self, items: Sequence[MemoryItem | dict], *, namespace: str | None = None, dedup: bool = True,
                 actor: str = "curator", embeddings: np.ndarray | None = None) -> list[AddResult]:
        """Add many items, embedded in batches and committed ``ADD_BATCH`` at a time."""
        results: list[AddResult] = []
        for start in range(0, len(items), ADD_BATCH):
            chunk = items[start:start + ADD_BATCH]
            vecs = None if embeddings is None else np.asarray(embeddings)[start:start + ADD_BATCH]
            ns, prepared = self._prepare(chunk, namespace, dedup, vecs)
            decided = [(new, vec, self._decide(new, cands) if cands else Decision("ADD", reason="new item"))
                       for new, vec, cands in prepared]
            results.extend(self._apply(ns, decided, actor))
        return results

    def _apply(self, ns: str, decided: list[tuple[MemoryItem, np.ndarray, Decision]], actor: str) -> list[AddResult]:
        """Commit the decisions in one transaction, then index."""
        vectors: dict[tuple[str, int], np.ndarray] = {}

        def write() -> list[AddResult]:
            vectors.clear()
            out: list[AddResult] = []
            pending: dict[str, str] = {}  # batch item id -> stored id it was merged into
            with self.db.write() as s:
                for new, vec, d in decided:
                    out.append(self._apply_one(s, ns, new, vec, d, actor, pending, vectors))
            return out

        results = retry_locked(write)
        self.sync_index(ns, vectors, check_orphans=False)
        return results

    def _apply_one(self, s: Session, ns: str, new: MemoryItem, vec: np.ndarray, d: Decision, actor: str,
                   pending: dict[str, str], vectors: dict) -> AddResult:
        target_row = None
        if d.target is not None:
            target_id = pending.get(d.target.id, d.target.id)
            target_row = s.get(ItemRow, target_id)
            if target_row is None or target_row.status != "active" or target_row.namespace != ns:
                d = Decision("ADD", reason=f"merge target {target_id} is gone; added instead")
                target_row = None
        if target_row is not None and actor == "curator" and (target_row.pinned or target_row.source == "human"):
            if d.action == "CONTRADICT":
                d = Decision("ADD", similarity=d.similarity,
                             reason=f"contradicts protected item {target_row.id}: added alongside, not superseding")
                target_row = None
            else:
                return AddResult(action=Action.NOOP, item=_row_to_item(target_row), similarity=d.similarity,
                                 reason=f"similar to protected (pinned/human) item {target_row.id}: left unchanged")
        if d.action == "ADD" or target_row is None:
            row = self._insert(s, new, d.reason or "added", actor)
            vectors[(row.id, row.version)] = vec
            pending[new.id] = row.id
            return AddResult(action=Action.ADD, item=_row_to_item(row), reason=d.reason, similarity=d.similarity)
        if d.action == "CONTRADICT":
            row = self._insert(s, new, f"supersedes {target_row.id}: {d.reason}", actor)
            vectors[(row.id, row.version)] = vec
            self._change(s, target_row, d.reason or "contradiction", actor, status="superseded",
                         superseded_by=row.id)
            pending[new.id] = row.id
            return AddResult(action=Action.ADD, item=_row_to_item(row), reason=d.reason,
                             similarity=d.similarity, superseded=[target_row.id])
        run_ids = list(dict.fromkeys([*target_row.run_ids, *new.run_ids]))
        pending[new.id] = target_row.id
        if d.action == "NOOP":
            if run_ids != target_row.run_ids:
                target_row.run_ids = run_ids  # provenance only: not a content change
            return AddResult(action=Action.NOOP, item=_row_to_item(target_row), reason=d.reason,
                             similarity=d.similarity)
        # UPDATE: re-merge against the row as stored now (another writer may have changed it).
        if d.by == "rule":
            content = merge_content(target_row.content, new.content)
        else:
            content = d.content or target_row.content
        changed_content = content != target_row.content
        self._change(
            s, target_row, d.reason or "merge", actor, content=content, title=d.title or target_row.title,
            tags=list(dict.fromkeys([*target_row.tags, *new.tags])), run_ids=run_ids,
            # unverified news merged into an item keeps it unverified until outcomes confirm it
            verified=target_row.verified and (new.verified or not changed_content),
        )
        return AddResult(action=Action.UPDATE, item=_row_to_item(target_row), reason=d.reason,
                         similarity=d.similarity)

    # --- explicit changes ----------------------------------------------------------------------------
    def get(self, item_id: str, *, namespace: str | None = None) -> MemoryItem:
        ns = self._ns(namespace)
        with self.db.read() as s:
            return _row_to_item(self._row(s, item_id, ns))

    def history(self, item_id: str, *, namespace: str | None = None) -> list[ItemVersion]:
        """Every version of the item, oldest first, each with the reason of the change."""
        ns = self._ns(namespace)
        with self.db.read() as s:
            self._row(s, item_id, ns)
            rows = s.scalars(select(VersionRow).where(VersionRow.item_id == item_id).order_by(VersionRow.version))
            return [ItemVersion(item_id=r.item_id, version=r.version, reason=r.reason, actor=r.actor,
                                created_at=r.created_at, snapshot=r.snapshot) for r in rows]

    def _mutate(self, item_id: str, namespace: str | None, fn) -> MemoryItem:
        ns = self._ns(namespace)

        def write() -> MemoryItem:
            with self.db.write() as s:
                row = self._row(s, item_id, ns)
                fn(s, row)
                return _row_to_item(row)

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
        except Exception as err:
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
                self._bump(s, [ns])

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
                rows = {r.id: r for r in s.scalars(select(ItemRow).where(ItemRow.id.in_(ids), ItemRow.namespace == ns))}
                missing = [i for i in ids if i not in rows]
                if missing:
                    raise ItemNotFound(f"no memory item {missing[0]!r} in namespace {ns!r}")
                now = utcnow()
                for row in rows.values():
                    if success:
                        row.times_succeeded += 1
                    else:
                        row.times_failed += 1
                    row.utility = utility_of(row.times_succeeded, row.times_failed)
                    row.last_used_at = now
                    if (not row.verified and row.times_succeeded >= self.confirm_after
                            and row.times_succeeded > row.times_failed):
                        self._change(s, row, f"confirmed by {row.times_succeeded} successful runs", "system",
                                     verified=True)
                return [_row_to_item(rows[i]) for i in ids]

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
                          run_ids=[run_id] if run_id else [], verified=True)
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

    # --- reading ----------------------------------------------------------------------------------------
    def list(self, *, namespace: str | None = None, kinds: Sequence[str] | None = None,
             status: str | None = "active", limit: int = 100, offset: int = 0) -> list[MemoryItem]:
        ns = self._ns(namespace)
        query = select(ItemRow).where(ItemRow.namespace == ns)
        if status:
            query = query.where(ItemRow.status == status)
        if kinds:
            query = query.where(ItemRow.kind.in_(list(kinds)))
        with self.db.read() as s:
            rows = s.scalars(query.order_by(ItemRow.updated_at.desc(), ItemRow.id).limit(limit).offset(offset))
            return [_row_to_item(r) for r in rows]

    def namespaces(self) -> list[str]:
        with self.db.read() as s:
            return sorted(set(s.scalars(select(ItemRow.namespace).distinct())))

    def stats(self, *, namespace: str | None = None) -> dict[str, Any]:
        ns = self._ns(namespace)
        with self.db.read() as s:
            by = s.execute(select(ItemRow.kind, ItemRow.status, func.count()).where(ItemRow.namespace == ns)
                           .group_by(ItemRow.kind, ItemRow.status)).all()
            agg = s.execute(select(func.count(), func.sum(ItemRow.times_retrieved), func.sum(ItemRow.times_succeeded),
                                   func.sum(ItemRow.times_failed), func.avg(ItemRow.utility),
                                   func.sum(cast(ItemRow.pinned, Integer)), func.sum(cast(ItemRow.verified, Integer)))
                            .where(ItemRow.namespace == ns, ItemRow.status == "active")).one()
            pending = s.scalar(select(func.count()).select_from(ItemRow).where(
                ItemRow.namespace == ns, ItemRow.indexed.is_(False))) or 0
        kinds: dict[str, int] = {}
        statuses: dict[str, int] = {}
        for kind, status, count in by:
            statuses[status] = statuses.get(status, 0) + count
            if status == "active":
                kinds[kind] = kinds.get(kind, 0) + count
        return {
            "namespace": ns, "database": redact(self.db.url), "index": self.index.location,
            "active": agg[0] or 0, "by_status": statuses, "by_kind": kinds,
            "pinned": int(agg[5] or 0), "verified": int(agg[6] or 0),
            "times_retrieved": int(agg[1] or 0), "times_succeeded": int(agg[2] or 0),
            "times_failed": int(agg[3] or 0), "mean_utility": round(float(agg[4]), 4) if agg[4] is not None else None,
            "indexed_vectors": self.index.count(ns), "pending_index": pending,
            "namespaces": self.namespaces(),
        }

    def _generation(self, ns: str) -> int:
        with self.db.read() as s:
            return s.scalar(select(NamespaceRow.generation).where(NamespaceRow.namespace == ns)) or 0

    def _lexical_docs(self, ns: str) -> list[tuple[str, str]]:
        with self.db.read() as s:
            rows = s.execute(select(ItemRow.id, ItemRow.title, ItemRow.content, ItemRow.tags, ItemRow.task_signature)
                             .where(ItemRow.namespace == ns, ItemRow.status == "active"))
            return [(r.id, " ".join([r.title, r.content, " ".join(r.tags or []), r.task_signature])) for r in rows]

    def retrieve(self, query: str, k: int = 5, kinds: Sequence[str] | None = None, namespace: str | None = None,
                 *, track: bool = True) -> list[Retrieved]:
        """The ``k`` items most useful for ``query``: semantic similarity + BM25 + observed utility, with
        unverified items ranked below verified ones. ``track`` counts the retrieval in utility stats."""
        ns = self._ns(namespace)
        if kinds:
            bad = sorted(set(kinds) - set(KINDS))
            if bad:
                raise InvalidItemError(f"unknown kind(s) {', '.join(bad)}; kinds: {', '.join(KINDS)}")
        if k <= 0 or not query or not query.strip():
            return []
        qvec = embedding.embed_one(query)
        pool = max(4 * k, 24)
        sem = dict(self.index.query(ns, qvec, pool * (3 if kinds else 1)))
        lex = self.lexical.search(ns, query, self._generation(ns), lambda: self._lexical_docs(ns),
                                  top=pool * (3 if kinds else 1))
        lex_top = list(lex.top)
        max_lex = lex.best
        rows = self._load_active(ns, set(sem) | set(lex_top), kinds)
        if kinds and len(rows) < k:  # rare kinds: ask the index with a filter
            where = {"kind": {"$in": list(kinds)}} if len(kinds) > 1 else {"kind": kinds[0]}
            sem.update(dict(self.index.query(ns, qvec, pool, where=where)))
            rows = self._load_active(ns, set(sem) | set(lex_top), kinds)
        missing = [i for i in rows if i not in sem]
        for item_id, vec in self.index.embeddings(ns, missing).items():
            sem[item_id] = float(np.dot(qvec, vec))
        w = self.weights
        hits = []
        for item_id, item in rows.items():
            semantic = sem.get(item_id, 0.0)
            lexical = lex.score(item_id) / max_lex if max_lex > 0 else 0.0
            trusted = item.verified or item.source == "human"
            parts = {
                "semantic": round(semantic, 6), "lexical": round(lexical, 6), "utility": round(item.utility, 6),
                "provenance": 0.0 if trusted else -w.unverified_penalty,
            }
            score = (w.semantic * semantic + w.lexical * lexical + w.utility * (item.utility - 0.5)
                     + parts["provenance"])
            hits.append(Retrieved(item=item, score=round(score, 6), parts=parts))
        hits.sort(key=lambda h: (-h.score, h.item.id))
        hits = hits[:k]
        if track and hits:
            self._track([h.item.id for h in hits])
        return hits

    def _load_active(self, ns: str, ids: set[str], kinds: Sequence[str] | None) -> dict[str, MemoryItem]:
        if not ids:
            return {}
        # By primary key only, filtered here: with namespace/status in the WHERE clause SQLite may pick the
        # namespace index and scan the whole namespace (measured ~20 ms at 100k items).
        wanted = set(kinds) if kinds else None
        with self.db.read() as s:
            rows = s.scalars(select(ItemRow).where(ItemRow.id.in_(list(ids))))
            return {r.id: _row_to_item(r) for r in rows
                    if r.namespace == ns and r.status == "active" and (wanted is None or r.kind in wanted)}

    def mark_retrieved(self, ids: Sequence[str]) -> None:
        """Count a use of these items in their retrieval statistics (``retrieve(track=False)`` leaves it
        to the caller, e.g. when only some of the hits end up in a prompt)."""
        if ids:
            self._track(list(ids))

    def _track(self, ids: list[str]) -> None:
        def write() -> None:
            with self.db.write() as s:
                s.execute(update(ItemRow).where(ItemRow.id.in_(ids))
                          .values(times_retrieved=ItemRow.times_retrieved + 1))

        retry_locked(write)

    def cheatsheet(self, query: str, max_tokens: int = 400, *, k: int = 12, kinds: Sequence[str] | None = None,
                   namespace: str | None = None, model: str | None = None) -> str:
        """A compact cheatsheet for ``query`` synthesised from the top items, at most ``max_tokens``."""
        from .cheatsheet import synthesize

        hits = self.retrieve(query, k=k, kinds=kinds, namespace=namespace)
        return synthesize(query, hits, max_tokens=max_tokens, model=model)

    # --- export / import ----------------------------------------------------------------------------
    def export_jsonl(self, path: str | Path, *, namespace: str | None = None, all_namespaces: bool = False) -> int:
        from .transfer import export_jsonl

        return export_jsonl(self, path, None if all_namespaces else self._ns(namespace))

    def import_jsonl(self, path: str | Path, *, namespace: str | None = None, replace: bool = False) -> dict[str, int]:
        from .transfer import import_jsonl

        return import_jsonl(self, path, namespace=None if namespace is None else check_namespace(namespace),
                            replace=replace)

    # --- LangGraph store support: key-addressed writes ------------------------------------------------
    def put(self, key: str, item: MemoryItem | dict, *, namespace: str | None = None, actor: str = "store",
            reason: str = "store put") -> MemoryItem:
        """Create or replace the item stored under ``key`` (no dedup: the key addresses it)."""
        ns = self._ns(namespace)
        self._ensure_namespace(ns)
        new = self._coerce(item, ns)
        fields = ("kind", "title", "content", "tags", "task_signature", "data")

        def write() -> MemoryItem:
            with self.db.write() as s:
                row = s.scalar(select(ItemRow).where(ItemRow.namespace == ns, ItemRow.key == key))
                if row is None:
                    return _row_to_item(self._insert(s, new.model_copy(update={"key": key}), reason, actor))
                changes = {f: getattr(new, f) for f in fields if getattr(row, f) != getattr(new, f)}
                if row.status != "active":
                    changes.update(status="active", superseded_by=None)
                if changes:
                    self._change(s, row, reason, actor, **changes)
                return _row_to_item(row)

        try:
            stored = retry_locked(write)
        except IntegrityError:  # the same key was created concurrently: now it is an update
            stored = retry_locked(write)
        self.sync_index(ns, check_orphans=False)
        return stored

    def get_by_key(self, key: str, *, namespace: str | None = None) -> MemoryItem | None:
        ns = self._ns(namespace)
        with self.db.read() as s:
            row = s.scalar(select(ItemRow).where(ItemRow.namespace == ns, ItemRow.key == key,
                                                 ItemRow.status == "active"))
            if row is None:
                row = s.get(ItemRow, key)
                if row is None or row.namespace != ns or row.status != "active":
                    return None
            return _row_to_item(row)
