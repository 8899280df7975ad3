"""Writes: prepare (embed, find near-duplicates), decide (ADD / UPDATE / NOOP / CONTRADICT), apply.

One async path (``aadd``) decides every single add, with ``add`` as its synchronous wrapper, so the two
cannot drift. The decision is the deterministic rule, or, with a merge model, an LLM's (untrusted, parsed
defensively, the rule when unusable). LLM calls go through the caller's gateway (``gateway=``), else the
bank's own (built once), so they are budgeted, tagged and in that gateway's ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from seasoned.errors import InvalidItemError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import embedding
from .core import row_to_item
from .db import ItemRow, retry_locked
from .indexing import Indexing
from .items import Action, AddResult, MemoryItem, describe_error
from .merge import Decision, merge_content, merge_messages, parse_llm_decision, rule_decision

if TYPE_CHECKING:
    from seasoned.models import Gateway

ADD_BATCH = 256
Candidates = list[tuple[MemoryItem, float]]


class Writes(Indexing):
    dedup_threshold: float
    noop_threshold: float
    llm_threshold: float

    def _coerce(self, item: MemoryItem | dict, ns: str) -> MemoryItem:
        try:
            data = item.model_dump() if isinstance(item, MemoryItem) else dict(item)
            data["namespace"] = ns
            return MemoryItem.model_validate(data)
        except (TypeError, ValueError) as err:  # pydantic's ValidationError is a ValueError
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
                found = [(row_to_item(r), hits[r.id]) for r in rows]
        for other, other_vec in batch:
            if other.kind == item.kind:
                found.append((other, float(np.dot(vec, other_vec))))
        found.sort(key=lambda pair: -pair[1])
        return found

    def _decide(self, item: MemoryItem, candidates: Candidates) -> Decision:
        """The deterministic rule (no candidates: a new item)."""
        if not candidates:
            return Decision("ADD", reason="new item")
        return rule_decision(item, candidates, dedup_threshold=self.dedup_threshold,
                             noop_threshold=self.noop_threshold)

    def add(self, item: MemoryItem | dict, *, namespace: str | None = None, dedup: bool = True,
            actor: str = "curator", model: str | None = None, gateway: Gateway | None = None) -> AddResult:
        """Add one item: ADD, UPDATE (merge into a near-duplicate) or NOOP. With ``model`` (or the bank's
        ``merge_model``) an LLM decides the merge, through ``gateway``; without, a deterministic rule does.
        The synchronous form of ``aadd`` (safe from threads and from inside a running loop)."""
        from seasoned.models.sync import run_sync

        return run_sync(self.aadd(item, namespace=namespace, dedup=dedup, actor=actor, model=model,
                                  gateway=gateway))

    async def aadd(self, item: MemoryItem | dict, *, namespace: str | None = None, dedup: bool = True,
                   actor: str = "curator", model: str | None = None, gateway: Gateway | None = None) -> AddResult:
        """Async ``add``. Database and embedding work runs in a thread, so the event loop is never blocked."""
        ns, prepared = await asyncio.to_thread(self._prepare, [item], namespace, dedup)
        new, vec, candidates = prepared[0]
        decision = await self._adecide(new, candidates, model or self.merge_model, gateway)
        results = await asyncio.to_thread(self._apply, ns, [(new, vec, decision)], actor)
        return results[0]

    async def _adecide(self, new: MemoryItem, candidates: Candidates, model: str | None,
                       gateway: Gateway | None) -> Decision:
        """The LLM's decision among the candidates similar enough to ask about (at most 3), else the rule."""
        shortlist = [c for c in candidates if c[1] >= self.llm_threshold][:3] if model else []
        if not shortlist:
            return self._decide(new, candidates)
        from seasoned.models import SeasonedError

        try:
            reply = await self.merge_gateway(gateway, model).acomplete(
                merge_messages(new, shortlist), model=model, max_tokens=512, role="curator")
        except SeasonedError as err:
            return self._fallback(new, candidates, f"llm merge failed ({err})")
        decision = parse_llm_decision(reply.text, new, shortlist)
        return decision or self._fallback(new, candidates, "llm merge output unusable")

    def _fallback(self, new: MemoryItem, candidates: Candidates, why: str) -> Decision:
        decision = self._decide(new, candidates)
        decision.reason = f"{decision.reason} ({why}; deterministic rule applied)"
        return decision

    def _prepare(self, items: Sequence[MemoryItem | dict], namespace: str | None, dedup: bool,
                 embeddings: np.ndarray | None = None):
        ns = self._ns(namespace)
        self.ensure_namespace(ns)
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
            decided = [(new, vec, self._decide(new, cands)) for new, vec, cands in prepared]
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
                return AddResult(action=Action.NOOP, item=row_to_item(target_row), similarity=d.similarity,
                                 reason=f"similar to protected (pinned/human) item {target_row.id}: left unchanged")
        if d.action == "ADD" or target_row is None:
            row = self._insert(s, new, d.reason or "added", actor)
            vectors[(row.id, row.version)] = vec
            pending[new.id] = row.id
            return AddResult(action=Action.ADD, item=row_to_item(row), reason=d.reason, similarity=d.similarity)
        if d.action == "CONTRADICT":
            row = self._insert(s, new, f"supersedes {target_row.id}: {d.reason}", actor)
            vectors[(row.id, row.version)] = vec
            self._change(s, target_row, d.reason or "contradiction", actor, status="superseded",
                         superseded_by=row.id)
            pending[new.id] = row.id
            return AddResult(action=Action.ADD, item=row_to_item(row), reason=d.reason,
                             similarity=d.similarity, superseded=[target_row.id])
        run_ids = list(dict.fromkeys([*target_row.run_ids, *new.run_ids]))
        pending[new.id] = target_row.id
        if d.action == "NOOP":
            if run_ids != target_row.run_ids:
                target_row.run_ids = run_ids  # provenance only: not a content change
            return AddResult(action=Action.NOOP, item=row_to_item(target_row), reason=d.reason,
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
        return AddResult(action=Action.UPDATE, item=row_to_item(target_row), reason=d.reason,
                         similarity=d.similarity)

    # --- LangGraph store support: key-addressed writes ------------------------------------------------
    def put(self, key: str, item: MemoryItem | dict, *, namespace: str | None = None, actor: str = "store",
            reason: str = "store put") -> MemoryItem:
        """Create or replace the item stored under ``key`` (no dedup: the key addresses it)."""
        ns = self._ns(namespace)
        self.ensure_namespace(ns)
        new = self._coerce(item, ns)
        fields = ("kind", "title", "content", "tags", "task_signature", "data")

        def write() -> MemoryItem:
            with self.db.write() as s:
                row = s.scalar(select(ItemRow).where(ItemRow.namespace == ns, ItemRow.key == key))
                if row is None:
                    return row_to_item(self._insert(s, new.model_copy(update={"key": key}), reason, actor))
                changes = {f: getattr(new, f) for f in fields if getattr(row, f) != getattr(new, f)}
                # a checked run's put verifies the item (e.g. an imported one); a new value unchecked does not
                verified = new.verified if changes else row.verified or new.verified
                if verified != row.verified:
                    changes["verified"] = verified
                if row.status != "active":
                    changes.update(status="active", superseded_by=None)
                if changes:
                    self._change(s, row, reason, actor, **changes)
                return row_to_item(row)

        try:
            stored = retry_locked(write)
        except IntegrityError:  # the same key was created concurrently: now it is an update
            stored = retry_locked(write)
        self.sync_index(ns, check_orphans=False)
        return stored
