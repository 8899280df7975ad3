"""Retrieval: the items most useful for a query, by semantic similarity (Chroma), BM25 (exact
identifiers and error messages), observed utility, and provenance (unverified items rank lower).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from seasoned.errors import InvalidItemError
from sqlalchemy import select, update

from . import embedding
from .core import BankCore, row_to_item
from .db import ItemRow, NamespaceRow, retry_locked
from .items import KINDS, MAX_COUNT, MemoryItem, Retrieved
from .lexical import LexicalIndex

if TYPE_CHECKING:
    from seasoned.models import Gateway


@dataclass(frozen=True)
class RetrievalWeights:
    """score = semantic*cos + lexical*bm25_normalised + utility*(utility-0.5) - unverified_penalty."""

    semantic: float = 0.6
    lexical: float = 0.3
    utility: float = 0.3
    unverified_penalty: float = 0.1



DEFAULT_WEIGHTS = RetrievalWeights()


class Ranking(BankCore):
    weights: RetrievalWeights
    lexical: LexicalIndex

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
            return {r.id: row_to_item(r) for r in rows
                    if r.namespace == ns and r.status == "active" and (wanted is None or r.kind in wanted)}

    def mark_retrieved(self, ids: Sequence[str]) -> None:
        """Count a use of these items in their retrieval statistics (``retrieve(track=False)`` leaves it
        to the caller, e.g. when only some of the hits end up in a prompt)."""
        if ids:
            self._track(list(ids))

    def _track(self, ids: list[str]) -> None:
        def write() -> None:
            with self.db.write() as s:
                s.execute(update(ItemRow).where(ItemRow.id.in_(ids), ItemRow.times_retrieved < MAX_COUNT)
                          .values(times_retrieved=ItemRow.times_retrieved + 1))  # saturates at MAX_COUNT

        retry_locked(write)

    def cheatsheet(self, query: str, max_tokens: int = 400, *, k: int = 12, kinds: Sequence[str] | None = None,
                   namespace: str | None = None, model: str | None = None, gateway: Gateway | None = None) -> str:
        """A compact cheatsheet for ``query`` synthesised from the top items, at most ``max_tokens``.
        With ``model`` an LLM condenses it, through ``gateway`` (default: the bank's, see ``merge_gateway``)."""
        from .cheatsheet import synthesize

        hits = self.retrieve(query, k=k, kinds=kinds, namespace=namespace)
        return synthesize(query, hits, max_tokens=max_tokens, model=model,
                          gateway=self.merge_gateway(gateway, model) if model else None)
