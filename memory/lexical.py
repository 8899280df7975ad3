"""Lexical ranking with BM25 (bm25s): finds exact identifiers, error messages and function names.

One in-process index per namespace, rebuilt lazily when the namespace's active items changed
(the caller passes a cheap stamp read from SQL: count and last change).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_WORD = re.compile(r"[A-Za-z0-9_]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words; identifiers also split into parts (``parse_config`` -> parse_config, parse, config)."""
    tokens: list[str] = []
    for word in _WORD.findall(text or ""):
        low = word.lower()
        tokens.append(low)
        parts = [p.lower() for chunk in word.split("_") for p in _CAMEL.findall(chunk)]
        if len(parts) > 1:
            tokens.extend(p for p in parts if len(p) > 1)
    return tokens


@dataclass
class _Built:
    stamp: Hashable
    ids: list[str]
    retriever: Any | None  # None when the namespace has no items
    position: dict[str, int] | None = None


@dataclass
class LexicalHits:
    """The best ``top`` items, the best score overall, and a lookup for any other item's score."""

    top: dict[str, float]
    best: float
    _raw: Any = None
    _position: dict[str, int] | None = None

    def score(self, item_id: str) -> float:
        if item_id in self.top:
            return self.top[item_id]
        if self._raw is None or self._position is None or item_id not in self._position:
            return 0.0
        return float(self._raw[self._position[item_id]])


class LexicalIndex:
    def __init__(self) -> None:
        self._built: dict[str, _Built] = {}
        self._lock = threading.Lock()

    def _get(self, namespace: str, stamp: Hashable, load: Callable[[], Sequence[tuple[str, str]]]) -> _Built:
        with self._lock:
            built = self._built.get(namespace)
            if built is not None and built.stamp == stamp:
                return built
        docs = load()
        ids = [doc_id for doc_id, _ in docs]
        retriever = None
        if docs:
            import bm25s

            corpus = [tokenize(text) or ["_empty_"] for _, text in docs]
            retriever = bm25s.BM25()
            retriever.index(_to_bm25s_tokens(corpus), show_progress=False)
        built = _Built(stamp=stamp, ids=ids, retriever=retriever, position={i: n for n, i in enumerate(ids)})
        with self._lock:
            self._built[namespace] = built
        return built

    def search(self, namespace: str, query: str, stamp: Hashable,
               load: Callable[[], Sequence[tuple[str, str]]], top: int) -> LexicalHits:
        """BM25 scores: the ``top`` best matching items (score > 0), plus lookups for any other item."""
        built = self._get(namespace, stamp, load)
        terms = list(dict.fromkeys(tokenize(query)))
        if built.retriever is None or not terms:
            return LexicalHits({}, 0.0)
        vocab = built.retriever.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return LexicalHits({}, 0.0)
        raw = np.asarray(built.retriever.get_scores(known))
        top = min(top, len(raw))
        best = np.argpartition(-raw, top - 1)[:top] if top < len(raw) else np.arange(len(raw))
        best = best[np.argsort(-raw[best], kind="stable")]
        hits = {built.ids[i]: float(raw[i]) for i in best if raw[i] > 0}
        return LexicalHits(hits, float(raw.max()), raw, built.position)


def _to_bm25s_tokens(corpus: list[list[str]]):
    """bm25s wants a Tokenized(ids, vocab) object; build it from our own token lists."""
    import bm25s

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(tok, len(vocab)) for tok in doc] for doc in corpus]
    return bm25s.tokenization.Tokenized(ids=ids, vocab=vocab)
