"""The vector index: Chroma, one collection per namespace (a ``where`` filter on a shared collection
is much slower at 100k items; see benchmarks/memory_bench.py). Embeddings are always passed in:
Chroma's own (downloading) embedding function is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from seasoned.errors import MemoryConfigError
from seasoned.settings import apply_offline_defaults

from .db import exclusive_open

CHROMA_BATCH = 4000  # below Chroma's maximum batch size
log = logging.getLogger(__name__)


def collection_name(store_key: str, namespace: str) -> str:
    """A valid Chroma name, stable for (database, namespace), never shared between two databases."""
    digest = hashlib.sha1(f"{store_key}\x00{namespace}".encode()).hexdigest()[:24]
    return f"seasoned-{digest}"


class VectorIndex:
    def __init__(self, store_key: str, *, path: Path | None = None, url: str | None = None,
                 read_only: bool = False):
        apply_offline_defaults()
        import chromadb
        from chromadb.config import Settings

        self.store_key = store_key
        self._chromadb = chromadb
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.rebuilt_from: Path | None = None  # where a damaged index was moved, when it was
        self._tmp: tempfile.TemporaryDirectory | None = None
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
        elif read_only:
            assert path is not None
            self.client = self._open_copy(path, settings)
            self.location = f"{path} (read-only copy)"
        else:
            assert path is not None
            self.client = self._open_local(path, settings)
            self.location = str(path)

    # --- opening a local index -----------------------------------------------------------------------
    def _persistent(self, path: Path, settings: Any) -> Any:
        """A client on ``path`` that has really read its database (damage shows here, not later)."""
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"{path} is a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = self._chromadb.PersistentClient(path=str(path), settings=settings)
            client.list_collections()
            return client
        except Exception:
            self._forget_client(path)
            raise

    def _forget_client(self, path: Path) -> None:
        """Chroma caches one system per path: drop a broken one so the next open starts afresh."""
        try:
            from chromadb.api.shared_system_client import SharedSystemClient

            system = SharedSystemClient._identifier_to_system.pop(str(path), None)
            if system is not None:
                system.stop()
        except Exception as err:  # noqa: BLE001 - best effort: the cache layout is Chroma's business
            log.debug("memory: could not drop Chroma's cached client for %s: %s", path, err)

    def _open_local(self, path: Path, settings: Any) -> Any:
        """Open the index; a damaged one (unreadable database, a file where the folder should be) is moved
        aside and started empty, with one warning: SQL is the source of truth, and opening the bank
        re-indexes every active row that the index lacks. One process at a time (``exclusive_open``): a
        fresh index another process is creating is not damage."""
        with exclusive_open(path):
            return self._open_local_locked(path, settings)

    def _open_local_locked(self, path: Path, settings: Any) -> Any:
        try:
            return self._persistent(path, settings)
        except PermissionError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure to read it is damage (Chroma raises many kinds)
            damage = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        if not os.access(path.parent, os.W_OK) or (path.is_dir() and not os.access(path, os.W_OK)):
            raise MemoryConfigError(f"cannot open the vector index at {str(path)!r}: {damage} "
                                    "(its folder is read-only)")
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        suffix = 0
        while aside.exists() or aside.is_symlink():
            suffix += 1
            aside = aside.with_name(f"{aside.name.split('~')[0]}~{suffix}")
        try:
            path.rename(aside)
        except OSError as err:
            raise MemoryConfigError(f"the vector index at {str(path)!r} is damaged ({damage}) and could not be "
                                    f"moved aside: {err.strerror or err}") from None
        log.warning("memory: the vector index at %s is damaged (%s); moved it to %s, rebuilding it from SQL",
                    path, damage, aside)
        self.rebuilt_from = aside
        self._forget_client(path)  # a client this process cached for the path still reads the moved files
        try:
            return self._persistent(path, settings)
        except Exception as err:  # noqa: BLE001 - reported as one line naming the folder
            raise MemoryConfigError(f"the vector index at {str(path)!r} cannot be created: {err}") from None

    def _open_copy(self, path: Path, settings: Any) -> Any:
        """Read-only file system: search a private copy of the index (Chroma writes even to read)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="seasoned-chroma-ro-")
        copy = Path(self._tmp.name) / "chroma"
        try:
            if path.is_dir():
                shutil.copytree(path, copy)
            return self._persistent(copy, settings)
        except Exception as err:  # noqa: BLE001 - read-only mode: search without vectors rather than fail
            log.warning("memory: cannot read the vector index at %s (%s); searching without it", path,
                        (str(err).strip().splitlines() or [type(err).__name__])[0][:200])
            shutil.rmtree(copy, ignore_errors=True)
            return self._persistent(copy, settings)

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
