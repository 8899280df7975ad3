"""The embedding model as ONNX: exported once from the sentence-transformers model, then run by onnxruntime.

Why: importing sentence-transformers (torch, transformers, scikit-learn) takes ~9 s, which every short-lived
process paid before its first embedding (a cold ``seasoned-admin search`` took 11 s). onnxruntime and
tokenizers import in ~0.5 s. The first process that loads the model with sentence-transformers exports it
into ``SEASONED_HOME/embedders/<key>/`` and checks the export against sentence-transformers on probe texts;
later processes load that export. The key changes when the model folder's files change.

The export keeps sentence-transformers' vectors of the probe texts (``probes.npy``, its digest in the
manifest), and every load checks the export against them and against what any embedder of this model must
give (finite rows of the model folder's dimension, different texts not all one vector): a damaged or
planted export that runs but embeds wrongly (a constant vector, NaN, another model's 768-d output) is
refused, and the caller falls back to sentence-transformers, which writes it anew. The folder is as
trusted as the rest of SEASONED_HOME: the check catches a wrong export, not a forger who also rewrites
the probe file with a model of the right shape.

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

FORMAT = 2  # bump when the files written here change shape (2: probes.npy)
MANIFEST = "embedder.json"
PROBE_FILE = "probes.npy"
PROBES = ("how do I retry a flaky socket call?", "Zürich ünïcode ✓ 数学", "divide by zero", "x " * 400)
LOAD_PROBES = PROBES[:3]  # checked by every load: the short ones cost ~0.05 s, the 256-token one ~1 s
MIN_PROBE_COSINE = 0.9999
MAX_PROBE_SIMILARITY = 0.99  # two different probe texts as (nearly) one vector: not an embedder


class ExportRefused(ValueError):
    """An export on disk that does not embed as the model does (one line saying how)."""


def cache_key(model_dir: Path) -> str:
    """A digest of the model folder's file names, sizes and modification times (and of this format)."""
    digest = hashlib.sha256(f"{FORMAT}:{model_dir.resolve()}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def export_dir(home: Path, model_dir: Path) -> Path:
    return home / "embedders" / cache_key(model_dir)


def model_dimension(model_dir: Path) -> int | None:
    """The embedding size the model folder declares (its pooling config, else the transformer's
    ``hidden_size``); None when it declares none."""
    for name, key in (("1_Pooling/config.json", "word_embedding_dimension"), ("config.json", "hidden_size")):
        try:
            value = json.loads((model_dir / name).read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def load(folder: Path, dimension: int | None, probes: tuple[str, ...] = LOAD_PROBES) -> OnnxEmbedder:
    """The export in ``folder``, checked: raises (``ExportRefused`` or the loader's error) unless it embeds
    ``probes`` (the first of ``PROBES``) as sentence-transformers did at export time, as finite, distinct
    rows of ``dimension``."""
    embedder = OnnxEmbedder(folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    raw = (folder / PROBE_FILE).read_bytes()
    if hashlib.sha256(raw).hexdigest() != manifest.get("probes_sha256"):
        raise ExportRefused(f"{folder}: {PROBE_FILE} does not match the digest in {MANIFEST}")
    reference = np.load(folder / PROBE_FILE, allow_pickle=False)
    if reference.ndim != 2 or len(reference) != len(PROBES):
        raise ExportRefused(f"{folder}: {PROBE_FILE} holds {reference.shape}, not one row per probe text")
    vectors = embedder.encode(list(probes), batch_size=len(probes))
    check_probes(vectors, reference[:len(probes)], dimension)
    return embedder


def check_probes(vectors: np.ndarray, reference: np.ndarray, dimension: int | None) -> None:
    """Raise ``ExportRefused`` unless ``vectors`` (the export's rows for probe texts) are finite, of
    ``dimension``, pairwise different, and point where ``reference`` (sentence-transformers') does."""
    expected = (len(reference), dimension or reference.shape[-1])
    for name, rows in (("the export's", vectors), ("the stored", reference)):
        if rows.shape != expected:
            raise ExportRefused(f"{name} probe vectors have shape {rows.shape}, expected {expected}")
        if not np.isfinite(rows).all():
            raise ExportRefused(f"{name} probe vectors are not finite (NaN or infinity)")
        norms = np.linalg.norm(rows, axis=1)
        if float(norms.min()) == 0.0:
            raise ExportRefused(f"{name} probe vectors include a zero vector")
        unit = rows / norms[:, None]
        similarity = unit @ unit.T - np.eye(len(rows)) * 2
        if float(similarity.max()) > MAX_PROBE_SIMILARITY:
            raise ExportRefused(f"{name} probe vectors are one vector for different texts")
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = (unit * (reference / np.linalg.norm(reference, axis=1, keepdims=True))).sum(1)
    if float(cosine.min()) < MIN_PROBE_COSINE:
        raise ExportRefused(f"the export embeds differently from the model (cosine {float(cosine.min()):.6f} "
                            f"< {MIN_PROBE_COSINE})")


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
        reference = np.asarray(model.encode(list(PROBES), normalize_embeddings=False, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)
        _keep_probes(staging, reference)
        try:
            dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            load(staging, dimension(), probes=PROBES)  # the long probe too: truncation is as the model's
        except ExportRefused as exc:
            log.warning("ONNX export of the embedder differs from sentence-transformers (%s): not used", exc)
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


def _keep_probes(folder: Path, reference: np.ndarray) -> None:
    """Store sentence-transformers' probe vectors beside the export, their digest in the manifest."""
    np.save(folder / PROBE_FILE, reference, allow_pickle=False)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["probes_sha256"] = hashlib.sha256((folder / PROBE_FILE).read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))


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
