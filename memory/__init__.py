"""seasoned.memory: the experience bank (SQL source of truth + Chroma vector index) and its admin tool.

    from seasoned.memory import MemoryBank, MemoryItem

    bank = MemoryBank.open(url=None, namespace="math")   # SEASONED_DB_URL / SQLite under SEASONED_HOME
    res = bank.add(MemoryItem(kind="strategy", title="24 game", content="Try (a-b)*(c+d) first."))
    res.action, res.item.id                               # Action.ADD | UPDATE | NOOP
    hits = bank.retrieve("make 24 from 4 numbers", k=5, kinds=["strategy"])
    hits[0].item, hits[0].score, hits[0].parts            # parts: semantic, lexical, utility, provenance
    bank.record_outcome([h.item.id for h in hits], success=True)
    print(bank.cheatsheet("make 24 from 4 numbers", max_tokens=300))

API (every method takes ``namespace=``; default: the bank's namespace; items never cross namespaces):

- ``MemoryBank.open(url=None, namespace="default", *, chroma_url=None, chroma_path=None, read_only=False,
  dedup_threshold=0.85, noop_threshold=0.97, merge_model=None, gateway=None, ...) -> MemoryBank``
  (also a context manager)
- ``add(item, *, dedup=True, actor="curator", model=None, gateway=None) -> AddResult(action, item, reason,
  similarity, superseded)``; ``await aadd(...)`` (same arguments; ``add`` is its synchronous form). With
  ``model`` or the bank's ``merge_model`` an LLM decides merges, through ``gateway`` (the caller's: its
  budget, tags and ledger; default: the bank's ``gateway``, built once);
  ``add_many(items, *, dedup=True, embeddings=None) -> list[AddResult]`` (batched embedding)
- ``retrieve(query, k=5, kinds=None, namespace=None, *, track=True) -> list[Retrieved(item, score, parts)]``
- ``cheatsheet(query, max_tokens=400, *, k=12, kinds=None, model=None, gateway=None) -> str``
- ``record_outcome(item_ids, success) -> list[MemoryItem]``; ``prune(min_failures=3, max_utility=0.34,
  stale_days=90, dry_run=False) -> list[(id, reason)]``
- ``record_allocation(subtask_kind, *, budget, spent, success, difficulty=None, model=None, run_id=None)``
  and ``allocations(subtask_kind=None, limit=1000) -> list[dict]`` (for the learned allocator)
- ``get(id)``, ``history(id) -> list[ItemVersion]``, ``list(kinds=None, status="active", limit, offset)``,
  ``stats()``, ``namespaces()``
- ``edit(id, changes, reason="human edit", actor="human")``, ``pin(id, pinned=True)``,
  ``supersede(old_id, new_item, reason="contradiction")``, ``archive(id)``, ``restore(id)``,
  ``delete(id, hard=False)``
- ``export_jsonl(path, all_namespaces=False) -> int``, ``import_jsonl(path, replace=False) -> counts``,
  ``reindex(all_namespaces=False) -> int``, ``sync_index()``
- ``put(key, item)`` / ``get_by_key(key)``: key-addressed writes used by ``BankStore``, the LangGraph
  ``BaseStore`` adapter (``graph.compile(store=BankStore(bank))``).

Items (``MemoryItem``): id, namespace, kind (strategy, cheatsheet, lesson, code, behavior, allocation, note),
title, content, tags, task_signature, data (structured JSON), key, provenance (source success/failure/human,
run_ids, verified, pinned), status (active/archived/superseded, superseded_by), version, created/updated,
utility stats (times_retrieved, times_succeeded, times_failed, utility, last_used_at).

Rules: every change is a new version with its reason (``history``); a contradicted item is superseded,
never deleted; pinned and human items are never changed by the curator (``actor="curator"``); unverified
items rank below verified ones until ``confirm_after`` successful runs verify them.
"""

from seasoned.errors import (
    InvalidItemError,
    ItemNotFound,
    MemoryConfigError,
    MemoryStoreError,
    ProtectedItemError,
)

from .bank import MemoryBank, RetrievalWeights
from .items import KINDS, Action, AddResult, ItemVersion, MemoryItem, Retrieved


def __getattr__(name: str) -> object:
    """``BankStore`` is imported on first use: it pulls in LangGraph, which the admin tool does not need."""
    if name == "BankStore":
        from .store import BankStore

        return BankStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "KINDS",
    "Action",
    "AddResult",
    "BankStore",
    "InvalidItemError",
    "ItemNotFound",
    "ItemVersion",
    "MemoryBank",
    "MemoryConfigError",
    "MemoryItem",
    "MemoryStoreError",
    "ProtectedItemError",
    "RetrievalWeights",
    "Retrieved",
]
