"""The memory bank: SQL is the source of truth, Chroma the rebuildable vector index.

``MemoryBank`` is the façade users hold; each job lives in its own module:

- ``core``: the shared state, namespaces, versioned row changes (every change a version with its reason);
- ``indexing``: keeping Chroma in line with SQL (sync on open and after writes, ``reindex``);
- ``writes``: ``add``/``aadd``/``add_many``/``put`` (embed, find near-duplicates, decide, merge, apply);
- ``ranking``: ``retrieve`` (semantic + BM25 + utility + provenance) and ``cheatsheet``;
- ``upkeep``: ``edit``, ``pin``, ``archive``, ``restore``, ``delete``, ``supersede``, outcomes, ``prune``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from seasoned.settings import default_db_url, seasoned_home, settings
from sqlalchemy import Integer, cast, func, select

from .adapters import Adapter, AdapterStore
from .channels import ChannelStats
from .core import check_namespace, row_to_item
from .db import Database, ItemRow, VersionRow, redact
from .index import VectorIndex
from .items import ItemVersion, MemoryItem
from .lexical import LexicalIndex
from .ranking import DEFAULT_WEIGHTS, Ranking, RetrievalWeights
from .upkeep import Upkeep

if TYPE_CHECKING:
    from seasoned.models import Gateway

__all__ = ["MemoryBank", "RetrievalWeights", "check_namespace"]


class MemoryBank(Upkeep, Ranking):
    """Experience memory for one default namespace (every method also takes ``namespace=``).

    ``gateway``: what LLM merges and cheatsheets call through when a call names none (built once from
    ``merge_model`` on first use when not given)."""

    def __init__(self, db: Database, index: VectorIndex, namespace: str = "default", *,
                 dedup_threshold: float = 0.85, noop_threshold: float = 0.97, llm_threshold: float = 0.6,
                 confirm_after: int = 2, merge_model: str | None = None,
                 weights: RetrievalWeights = DEFAULT_WEIGHTS, gateway: Gateway | None = None):
        self.db = db
        self.index = index
        self.namespace = check_namespace(namespace)
        self.dedup_threshold = dedup_threshold
        self.noop_threshold = noop_threshold
        self.llm_threshold = llm_threshold
        self.confirm_after = confirm_after
        self.merge_model = merge_model
        self.weights = weights
        self.gateway = gateway
        self._gateway_lock = threading.Lock()
        self.lexical = LexicalIndex()
        self.channels = ChannelStats(db)  # which form of memory pays, per namespace/model/scope
        self.adapters = AdapterStore(db)  # LoRA adapters of local models (rows here, files under SEASONED_HOME)
        self._known_namespaces: set[str] = set()

    # --- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, namespace: str = "default", *, chroma_url: str | None = None,
             chroma_path: str | Path | None = None, sync: bool = True, read_only: bool = False,
             **options: Any) -> MemoryBank:
        """Open (creating if needed) the bank at ``url`` (default ``SEASONED_DB_URL`` or SQLite under
        ``SEASONED_HOME``). Chroma: ``chroma_url`` / ``SEASONED_CHROMA_URL`` (server) or a local folder
        next to the SQLite file (``<file>.chroma``) or ``$SEASONED_HOME/chroma``. ``read_only``: write
        nothing (no schema, no index sync; a local index is searched from a copy), for a read-only home."""
        setting = "--db/url" if url else "SEASONED_DB_URL"
        db = Database(url or default_db_url(), setting=setting, read_only=read_only)
        chroma_url = chroma_url or settings().chroma_url
        if chroma_path is None and not chroma_url:
            chroma_path = (db.sqlite_path.with_name(db.sqlite_path.name + ".chroma") if db.sqlite_path
                           else seasoned_home() / "chroma")
        try:
            index = VectorIndex(redact(db.url), path=Path(chroma_path) if chroma_path else None, url=chroma_url,
                                read_only=read_only and not chroma_url)
        except Exception:
            db.dispose()
            raise
        bank = cls(db, index, namespace, **options)
        if sync and not read_only:
            bank.sync_index(full=True)
        return bank

    def close(self) -> None:
        self.db.dispose()

    # --- experience in the weights (local models) ------------------------------------------------------
    def active_adapter(self, model: str, scope: str = "general", *, namespace: str | None = None) -> Adapter | None:
        """The LoRA adapter to serve for (namespace, model, scope), or None (see ``AdapterStore.active``)."""
        return self.adapters.active(self._ns(namespace), model, scope)

    def maybe_train(self, model: str, scope: str = "general", *, namespace: str | None = None) -> bool:
        """Start training an adapter in the background when enough new verified demonstrations arrived
        (``SEASONED_TRAIN_EVERY``); True when one was started. Never waits, never raises."""
        from .training import maybe_train_in_background

        return maybe_train_in_background(self.db, self._ns(namespace), model, scope)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------------------------
    def history(self, item_id: str, *, namespace: str | None = None) -> list[ItemVersion]:
        """Every version of the item, oldest first, each with the reason of the change."""
        ns = self._ns(namespace)
        with self.db.read() as s:
            self._row(s, item_id, ns)
            rows = s.scalars(select(VersionRow).where(VersionRow.item_id == item_id).order_by(VersionRow.version))
            return [ItemVersion(item_id=r.item_id, version=r.version, reason=r.reason, actor=r.actor,
                                created_at=r.created_at, snapshot=r.snapshot) for r in rows]

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
            return [row_to_item(r) for r in rows]

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

    # --- export / import ----------------------------------------------------------------------------
    def export_jsonl(self, path: str | Path, *, namespace: str | None = None, all_namespaces: bool = False) -> int:
        from .transfer import export_jsonl

        return export_jsonl(self, path, None if all_namespaces else self._ns(namespace))

    def import_jsonl(self, path: str | Path, *, namespace: str | None = None, replace: bool = False) -> dict[str, int]:
        from .transfer import import_jsonl

        return import_jsonl(self, path, namespace=None if namespace is None else check_namespace(namespace),
                            replace=replace)

    # --- LangGraph store support: key-addressed reads (writes: ``put``) -----------------------------
    def get_by_key(self, key: str, *, namespace: str | None = None) -> MemoryItem | None:
        ns = self._ns(namespace)
        with self.db.read() as s:
            row = s.scalar(select(ItemRow).where(ItemRow.namespace == ns, ItemRow.key == key,
                                                 ItemRow.status == "active"))
            if row is None:
                row = s.get(ItemRow, key)
                if row is None or row.namespace != ns or row.status != "active":
                    return None
            return row_to_item(row)
