"""What every part of the bank shares: its database, index and namespace, and versioned row changes.

``MemoryBank`` (``bank.py``) is the façade; ``indexing``, ``writes``, ``ranking`` and ``upkeep`` each add
one job on top of ``BankCore``. Every change of a row is a new version with its reason, bumps the
namespace's generation (what the lexical index keys on) and marks the row not indexed until Chroma has it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from seasoned.errors import ItemNotFound, MemoryConfigError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import Database, ItemRow, NamespaceRow, VersionRow, retry_locked
from .items import COUNTERS, MemoryItem, bounded_count, utcnow

if TYPE_CHECKING:
    from seasoned.models import Gateway

    from .index import VectorIndex

SNAPSHOT_FIELDS = ("kind", "title", "content", "tags", "task_signature", "data", "key", "source", "run_ids",
                   "verified", "pinned", "status", "superseded_by")  # what a version's snapshot holds
_NAMESPACE = re.compile(r"^[^\x00-\x1f]{1,256}$")


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace) or not namespace.strip():
        raise MemoryConfigError(f"namespace: expected 1-256 printable characters, got {namespace!r}")
    return namespace


def row_to_item(row: ItemRow) -> MemoryItem:
    fields = {c: getattr(row, c) for c in MemoryItem.model_fields}
    for counter in COUNTERS:  # an out-of-range counter never makes an item unreadable
        fields[counter] = bounded_count(fields[counter])
    return MemoryItem.model_validate(fields)


def item_to_row_fields(item: MemoryItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in MemoryItem.model_fields}


def embed_text(title: str, content: str) -> str:
    return f"{title}\n{content}" if title else content


class BankCore:
    """The shared state (set by ``MemoryBank.__init__``) and the versioned-change primitives."""

    db: Database
    index: VectorIndex
    namespace: str
    merge_model: str | None
    gateway: Gateway | None
    _known_namespaces: set[str]
    _gateway_lock: threading.Lock

    def merge_gateway(self, gateway: Gateway | None = None, model: str | None = None) -> Gateway:
        """The gateway merges and cheatsheets call through: ``gateway`` when given, else the bank's own
        (``MemoryBank(gateway=...)``, or one built once on first use)."""
        if gateway is not None:
            return gateway
        with self._gateway_lock:
            if self.gateway is None:
                from seasoned.models import Gateway

                self.gateway = Gateway(self.merge_model or model)
            return self.gateway

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else check_namespace(namespace)

    def get(self, item_id: str, *, namespace: str | None = None) -> MemoryItem:
        ns = self._ns(namespace)
        with self.db.read() as s:
            return row_to_item(self._row(s, item_id, ns))

    def namespaces(self) -> list[str]:
        """Every namespace that holds items (in any status)."""
        with self.db.read() as s:
            return sorted(set(s.scalars(select(ItemRow.namespace).distinct())))

    def ensure_namespace(self, namespace: str) -> None:
        """Create the namespace's row (which holds its generation) if it does not exist yet."""
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

    def known_namespaces(self, namespaces: Iterable[str]) -> None:
        """Note namespaces whose rows a caller created in its own transaction (e.g. an import)."""
        self._known_namespaces.update(namespaces)

    @staticmethod
    def bump(s: Session, namespaces: Iterable[str]) -> None:
        """Within the caller's transaction: the namespaces' items changed (their generation moves on)."""
        for ns in set(namespaces):
            s.execute(update(NamespaceRow).where(NamespaceRow.namespace == ns)
                      .values(generation=NamespaceRow.generation + 1))

    @staticmethod
    def _new_version(s: Session, row: ItemRow, reason: str, actor: str) -> None:
        s.add(VersionRow(item_id=row.id, version=row.version, reason=reason, actor=actor,
                         created_at=row.updated_at, snapshot={name: getattr(row, name) for name in SNAPSHOT_FIELDS}))

    def _change(self, s: Session, row: ItemRow, reason: str, actor: str, **fields: Any) -> None:
        """Apply a content/status change as a new version, queued for re-indexing."""
        for name, value in fields.items():
            setattr(row, name, value)
        row.version += 1
        row.updated_at = utcnow()
        row.indexed = False
        self._new_version(s, row, reason, actor)
        self.bump(s, [row.namespace])

    def _insert(self, s: Session, item: MemoryItem, reason: str, actor: str) -> ItemRow:
        row = ItemRow(**item_to_row_fields(item), indexed=False)
        s.add(row)
        s.flush()
        self._new_version(s, row, reason, actor)
        self.bump(s, [item.namespace])
        return row

    def _row(self, s: Session, item_id: str, namespace: str) -> ItemRow:
        row = s.get(ItemRow, item_id)
        if row is None or row.namespace != namespace:
            raise ItemNotFound(f"no memory item {item_id!r} in namespace {namespace!r}")
        return row
