"""The vector index: Chroma, one collection per namespace (a ``where`` filter on a shared collection
is much slower at 100k items; see benchmarks/memory_bench.py). Embeddings are always passed in:
Chroma's own (downloading) embedding function is never used.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from seasoned.models.settings import apply_offline_defaults

from .errors import MemoryConfigError

CHROMA_BATCH = 4000  # below Chroma's maximum batch size


def collection_name(store_key: str, namespace: str) -> str:
    """A valid Chroma name, stable for (database, namespace), never shared between two databases."""
    digest = hashlib.sha1(f"{store_key}\x00{namespace}".encode()).hexdigest()[:24]
    return f"seasoned-{digest}"


class VectorIndex:
    def __init__(self, store_key: str, *, path: Path | None = None, url: str | None = None):
        apply_offline_defaults()
        import chromadb
        from chromadb.config import Settings

        self.store_key = store_key
        self._chromadb = chromadb
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()
        if url:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise MemoryConfigError(f"SEASONED_CHROMA_URL: expected http(s)://host:port, got {url!r}")
            try:
                self.client = chromadb.HttpClient(
                    host=parsed.hostname, port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https", settings=settings,
                )
                self.client.heartbeat()
            except Exception as err:
                raise MemoryConfigError(f"SEASONED_CHROMA_URL: cannot reach Chroma at {url!r}: {err}") from None
            self.location = url
        else:
            assert path is not None
            path.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(path), settings=settings)
            self.location = str(path)

    # --- collections -----------------------------------------------------------------------------
    def collection(self, namespace: str, create: bool = True) -> Any | None:
        with self._lock:
            cached = self._collections.get(namespace)
        if cached is not None:
            return cached
        name = collection_name(self.store_key, namespace)
        try:
            col = self.client.get_collection(name)
        except Exception:
            if not create:
                return None
            metadata = {"seasoned_namespace": namespace, "seasoned_store": self.store_key[:200]}
            try:
                col = self.client.create_collection(
                    name, embedding_function=None, metadata=metadata, configuration={"hnsw": {"space": "cosine"}},
                )
            except Exception:  # another process created it in between
                col = self.client.get_collection(name)
        with self._lock:
            self._collections[namespace] = col
        return col

    def _call(self, namespace: str, op: str, *args: Any, create: bool = True, **kwargs: Any) -> Any:
        """Call a collection method, refreshing the handle once if another process dropped it."""
        for attempt in range(2):
            col = self.collection(namespace, create=create)
            if col is None:
                return None
            try:
                return getattr(col, op)(*args, **kwargs)
            except self._chromadb.errors.NotFoundError:
                with self._lock:
                    self._collections.pop(namespace, None)
                if attempt:
                    raise
        return None

    def namespaces(self) -> list[str]:
        """Namespaces that have a collection of this store."""
        found = []
        for col in self.client.list_collections():
            meta = col.metadata or {}
            if col.name == collection_name(self.store_key, meta.get("seasoned_namespace", "")):
                found.append(meta["seasoned_namespace"])
        return sorted(found)

    def drop(self, namespace: str) -> None:
        with self._lock:
            self._collections.pop(namespace, None)
        try:
            self.client.delete_collection(collection_name(self.store_key, namespace))
        except Exception:
            pass

    # --- vectors -----------------------------------------------------------------------------------
    def upsert(self, namespace: str, ids: Sequence[str], embeddings: np.ndarray,
               metadatas: Sequence[dict] | None = None) -> None:
        for start in range(0, len(ids), CHROMA_BATCH):
            end = start + CHROMA_BATCH
            self._call(
                namespace, "upsert", ids=list(ids[start:end]), embeddings=np.asarray(embeddings[start:end]),
                metadatas=list(metadatas[start:end]) if metadatas else None,
            )

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), CHROMA_BATCH):
            self._call(namespace, "delete", ids=list(ids[start:start + CHROMA_BATCH]), create=False)

    def count(self, namespace: str) -> int:
        return self._call(namespace, "count", create=False) or 0

    def ids(self, namespace: str) -> list[str]:
        got = self._call(namespace, "get", include=[], create=False)
        return list(got["ids"]) if got else []

    def query(self, namespace: str, embedding: np.ndarray, n: int, where: dict | None = None) -> list[tuple[str, float]]:
        """Nearest ids with cosine similarity, best first."""
        if n <= 0:
            return []
        col = self.collection(namespace, create=False)
        if col is None:
            return []
        kwargs: dict[str, Any] = {"query_embeddings": [np.asarray(embedding, dtype=np.float32)],
                                  "n_results": n, "include": ["distances"]}
        if where:
            kwargs["where"] = where
        got = self._call(namespace, "query", create=False, **kwargs)
        if not got or not got["ids"]:
            return []
        return [(i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0])]

    def embeddings(self, namespace: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self._call(namespace, "get", ids=list(ids), include=["embeddings"], create=False)
        if not got:
            return {}
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}
