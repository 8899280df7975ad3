"""The sentence embedder's forward pass in numpy: BERT (all-MiniLM-L6-v2) + mean pooling + L2 norm.

Why: importing torch and sentence-transformers takes 10-20 s, which made a cold ``seasoned-admin search``
take 21 s. This reads the same folder (``model.safetensors``, ``tokenizer.json``, ``config.json``,
``sentence_bert_config.json``) and computes the same vectors (cosine > 0.9999 against sentence-transformers,
tested), so an index built by either is searched by the other. It imports only numpy, tokenizers and
safetensors. Folders that are not a plain BERT with mean pooling raise ``UnsupportedModel`` (the caller
then uses sentence-transformers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class UnsupportedModel(Exception):
    pass


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, float32's resolution): scipy costs 1 s to import."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))


class MiniLM:
    """``encode(texts)`` -> unit-length float32 vectors, like ``SentenceTransformer.encode``."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
            modules = json.loads((folder / "modules.json").read_text())
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
            sbert = json.loads((folder / "sentence_bert_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise UnsupportedModel(f"{folder}: {exc}") from None
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        if (config.get("model_type") != "bert" or config.get("hidden_act") != "gelu"
                or kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"])
                or not pooling.get("pooling_mode_mean_tokens") or sbert.get("do_lower_case")
                or any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                                "pooling_mode_mean_sqrt_len_tokens"))
                or config.get("position_embedding_type", "absolute") != "absolute"):
            raise UnsupportedModel(f"{folder}: not a BERT model with mean pooling")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.normalize = "Normalize" in kinds
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = int(sbert.get("max_seq_length") or config["max_position_embeddings"])
        self.w = {k.removeprefix("bert."): v.astype(np.float32, copy=False) for k, v in
                  load_file(str(folder / "model.safetensors")).items()}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        weight = self.w.get(f"{name}.weight.T")
        if weight is None:  # transposed once, contiguous: BLAS is fastest on it
            weight = self.w[f"{name}.weight.T"] = np.ascontiguousarray(self.w[f"{name}.weight"].T)
        return x @ weight + self.w[f"{name}.bias"]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, eps = self.w, self.eps
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        hidden = x.shape[-1]
        size = hidden // self.heads
        bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, self.heads, size).transpose(0, 2, 1, 3)

            q, k, v = (split(self._linear(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(self._linear(context, f"{p}.attention.output.dense") + x,
                            w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"], eps)
            inner = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = _layer_norm(self._linear(inner, f"{p}.output.dense") + x,
                            w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"], eps)
        return x

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Batches of similar lengths (little padding), returned in the order given."""
        if not texts:
            return np.zeros((0, self.w["embeddings.word_embeddings.weight"].shape[1]), dtype=np.float32)
        all_encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(all_encodings[i].ids))
        batches: list[list[int]] = [[]]
        for i in order:  # a batch never pads a text to more than twice its length
            batch = batches[-1]
            if batch and (len(batch) >= batch_size
                          or len(all_encodings[i].ids) > 2 * len(all_encodings[batch[0]].ids)):
                batches.append(batch := [])
            batch.append(i)
        out = []
        for batch in batches:
            encodings = [all_encodings[i] for i in batch]
            length = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(encodings), length), dtype=np.int64)
            mask = np.zeros((len(encodings), length), dtype=np.float32)
            for row, e in enumerate(encodings):
                ids[row, :len(e.ids)] = e.ids
                mask[row, :len(e.ids)] = 1.0
            tokens = self._forward(ids, mask)
            pooled = (tokens * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            if self.normalize:
                pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out.append(pooled.astype(np.float32))
        result = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        result[order] = np.concatenate(out)
        return result
