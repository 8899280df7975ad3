"""LangGraph ``BaseStore`` on the memory bank: ``graph.compile(store=BankStore(bank))``.

A namespace tuple ``("users", "alice")`` is the bank namespace ``"users.alice"`` (LangGraph forbids dots
inside labels, so the mapping is reversible). Values are dicts kept in the item's ``data``; the text
that is embedded is ``value["content"]`` (or the fields named by ``index=[...]``, or the JSON of the value).
``delete`` archives (history stays readable); ``search(query=...)`` is the bank's hybrid retrieval.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
)

from .bank import MemoryBank
from .items import KINDS, MemoryItem

SEP = "."


def to_bank_namespace(namespace: tuple[str, ...]) -> str:
    return SEP.join(namespace) if namespace else "default"


def to_tuple(namespace: str) -> tuple[str, ...]:
    return tuple(namespace.split(SEP))


_OPS = {"$eq": lambda a, b: a == b, "$ne": lambda a, b: a != b, "$gt": lambda a, b: a is not None and a > b,
        "$gte": lambda a, b: a is not None and a >= b, "$lt": lambda a, b: a is not None and a < b,
        "$lte": lambda a, b: a is not None and a <= b}


def _matches(value: dict, filter: dict | None) -> bool:
    for key, expected in (filter or {}).items():
        actual = value.get(key)
        if isinstance(expected, dict) and expected and all(k in _OPS for k in expected):
            try:
                if not all(_OPS[op](actual, arg) for op, arg in expected.items()):
                    return False
            except TypeError:
                return False
        elif actual != expected:
            return False
    return True


class BankStore(BaseStore):
    """LangGraph store backed by a ``MemoryBank`` (same SQL + Chroma; same items the agents use)."""

    supports_ttl = False

    def __init__(self, bank: MemoryBank, *, source: str = "success"):
        self.bank = bank
        self.source = source

    # --- conversions ---------------------------------------------------------------------------------
    def _text(self, value: dict, index: list[str] | None) -> str:
        if index:
            parts = [str(t) for path in index for t in get_text_at_path(value, path) if t]
            if parts:
                return "\n".join(parts)
        content = value.get("content")
        if isinstance(content, str) and content.strip():
            return content
        return json.dumps(value, sort_keys=True, default=str)

    def _item(self, item: MemoryItem) -> dict:
        value = item.data if item.data is not None else {"content": item.content, "kind": item.kind,
                                                         "title": item.title, "tags": item.tags}
        return dict(namespace=to_tuple(item.namespace), key=item.key or item.id, value=value,
                    created_at=item.created_at, updated_at=item.updated_at)

    # --- operations ----------------------------------------------------------------------------------
    def _put(self, op: PutOp) -> None:
        ns = to_bank_namespace(op.namespace)
        if op.value is None:
            found = self.bank.get_by_key(op.key, namespace=ns)
            if found is not None:
                self.bank.archive(found.id, "deleted through the LangGraph store", actor="store", namespace=ns)
            return
        value = dict(op.value)
        kind = value.get("kind") if value.get("kind") in KINDS else "note"
        tags = value.get("tags") if isinstance(value.get("tags"), list) else []
        item = MemoryItem(kind=kind, title=str(value.get("title") or op.key)[:300],
                          content=self._text(value, op.index or None), tags=[str(t) for t in tags],
                          data=value, source=self.source)
        self.bank.put(op.key, item, namespace=ns)

    def _get(self, op: GetOp) -> Item | None:
        found = self.bank.get_by_key(op.key, namespace=to_bank_namespace(op.namespace))
        return Item(**self._item(found)) if found is not None else None

    def _namespaces_under(self, prefix: tuple[str, ...]) -> list[str]:
        return [ns for ns in self.bank.namespaces() if to_tuple(ns)[:len(prefix)] == tuple(prefix)]

    def _search(self, op: SearchOp) -> list[SearchItem]:
        wanted = op.offset + op.limit
        found: list[tuple[float | None, MemoryItem]] = []
        for ns in self._namespaces_under(op.namespace_prefix):
            if op.query:
                pool = wanted * (5 if op.filter else 1)
                for hit in self.bank.retrieve(op.query, k=pool, namespace=ns):
                    found.append((hit.score, hit.item))
            else:
                offset = 0
                while True:  # page through: a filter may reject many
                    page = self.bank.list(namespace=ns, limit=500, offset=offset)
                    found.extend((None, item) for item in page)
                    offset += len(page)
                    if len(page) < 500 or (not op.filter and len(found) >= wanted):
                        break
        results = [(score, item) for score, item in found if _matches(self._item(item)["value"], op.filter)]
        if op.query:
            results.sort(key=lambda pair: -(pair[0] or 0.0))
        else:
            results.sort(key=lambda pair: pair[1].updated_at, reverse=True)
        return [SearchItem(**self._item(item), score=score) for score, item in results[op.offset:wanted]]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for ns in self.bank.namespaces():
            path = to_tuple(ns)
            if any(not self._condition(path, c) for c in op.match_conditions or ()):
                continue
            out.add(path[:op.max_depth] if op.max_depth is not None else path)
        return sorted(out)[op.offset:op.offset + op.limit]

    @staticmethod
    def _condition(path: tuple[str, ...], condition: Any) -> bool:
        pattern = tuple(condition.path)
        if len(pattern) > len(path):
            return False
        part = path[:len(pattern)] if condition.match_type == "prefix" else path[len(path) - len(pattern):]
        return all(p == "*" or p == a for p, a in zip(pattern, part))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise TypeError(f"unsupported store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))
