"""The embedding model as ONNX: exported once from the sentence-transformers model, then run by onnxruntime.

Why: importing sentence-transformers (torch, transformers, scikit-learn) takes ~9 s, which every short-lived
process paid before its first embedding (a cold ``seasoned-admin search`` took 11 s). onnxruntime and
tokenizers import in ~0.5 s. The first process that loads the model with sentence-transformers exports it
into ``SEASONED_HOME/embedders/<key>/`` and checks the export against sentence-transformers on probe texts;
later processes load that export. The key changes when the model folder's files change.

Only the plain layout is exported: a Transformer module, mean pooling, and optionally Normalize (as
all-MiniLM-L6-v2 is). Any other model stays on sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the files written here change shape
MANIFEST = "embedder.json"
PROBES = ("how do I retry a flaky socket call?", "Zürich ünïcode ✓ 数学", "x " * 400)
MIN_PROBE_COSINE = 0.9999


def cache_key(model_dir: Path) -> str:
    """A digest of the model folder's file names, sizes and modification times (and of this format)."""
    digest = hashlib.sha256(f"{FORMAT}:{model_dir.resolve()}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def export_dir(home: Path, model_dir: Path) -> Path:
    return home / "embedders" / cache_key(model_dir)


class OnnxEmbedder:
    """Tokenize with ``tokenizers``, run the transformer with onnxruntime, mean-pool and normalize in numpy."""

    def __init__(self, folder: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder}: export format {manifest.get('format')!r}, expected {FORMAT}")
        self.normalize = bool(manifest["normalize"])
        self.inputs = list(manifest["inputs"])
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(manifest["max_seq_length"]))
        self.tokenizer.enable_padding(pad_id=int(manifest["pad_id"]), pad_token=str(manifest["pad_token"]))

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit-length (if the model normalizes) float32 rows; batches of similar length to pad little."""
        order = np.argsort([len(text) for text in texts], kind="stable")
        pooled = np.concatenate([self._batch([texts[i] for i in order[start:start + batch_size]])
                                 for start in range(0, len(texts), batch_size)])
        rows = np.empty_like(pooled)
        rows[order] = pooled
        return rows

    def _batch(self, texts: list[str]) -> np.ndarray:
        encoded = self.tokenizer.encode_batch(texts)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64), "attention_mask": mask,
                 "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64)}
        hidden = self.session.run(None, {name: feeds[name] for name in self.inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


def exportable(model) -> bool:
    """Whether a SentenceTransformer is Transformer + mean Pooling (+ Normalize), which the export reproduces."""
    kinds = [type(module).__name__ for module in model]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return False
    pooling = model[1].get_config_dict()
    return pooling.get("pooling_mode", pooling.get("pooling_mode_mean_tokens") and "mean") == "mean"


def export(model, target: Path) -> bool:
    """Write ``model`` (a loaded SentenceTransformer) as ONNX to ``target``, kept only if it reproduces the model.

    Returns whether ``target`` now holds a usable export. Failures are logged, never raised: the caller
    goes on with sentence-transformers.
    """
    if target.exists() or not exportable(model):
        return target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    except OSError as exc:  # a read-only home: embedding goes on, only slower in the next process
        log.info("no ONNX export of the embedder (cannot write %s): %s", target.parent, exc)
        return False
    try:
        _write(model, staging)
        probe = OnnxEmbedder(staging).encode(list(PROBES), batch_size=len(PROBES))
        reference = model.encode(list(PROBES), normalize_embeddings=False, convert_to_numpy=True,
                                 show_progress_bar=False)
        cosine = (probe * reference).sum(1) / (np.linalg.norm(probe, axis=1) * np.linalg.norm(reference, axis=1))
        if float(cosine.min()) < MIN_PROBE_COSINE:
            log.warning("ONNX export of the embedder differs from sentence-transformers (cosine %.6f): not used",
                        float(cosine.min()))
            return False
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: its export is as good
            pass
        return target.exists()
    except Exception as exc:  # noqa: BLE001 - an optional speed-up: never fail an embedding over it
        log.info("ONNX export of the embedder failed, staying on sentence-transformers: %s", exc)
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(model, folder: Path) -> None:
    import torch

    transformer = model[0]
    tokenizer = transformer.tokenizer
    tokenize = getattr(transformer, "preprocess", None) or transformer.tokenize  # `tokenize` before ST 6
    sample = tokenize(["an example", "another, longer example text"])
    inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHidden(transformer.auto_model).eval(), tuple(sample[name] for name in inputs),
                          str(folder / "model.onnx"), input_names=inputs, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    (folder / MANIFEST).write_text(json.dumps({
        "format": FORMAT, "inputs": inputs, "max_seq_length": model.max_seq_length,
        "pad_id": tokenizer.pad_token_id, "pad_token": tokenizer.pad_token,
        "normalize": len(model) == 3,
    }))
