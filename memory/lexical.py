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


class LexicalIndex:
    def __init__(self) -> None:
        self._built: dict[str, _Built] = {}
        self._lock = threading.Lock()

    def invalidate(self, namespace: str | None = None) -> None:
        with self._lock:
            if namespace is None:
                self._built.clear()
            else:
                self._built.pop(namespace, None)

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
        built = _Built(stamp=stamp, ids=ids, retriever=retriever)
        with self._lock:
            self._built[namespace] = built
        return built

    def scores(self, namespace: str, query: str, stamp: Hashable,
               load: Callable[[], Sequence[tuple[str, str]]]) -> dict[str, float]:
        """BM25 score of every matching item (items sharing no term with the query are left out)."""
        built = self._get(namespace, stamp, load)
        terms = [t for t in dict.fromkeys(tokenize(query))]
        if built.retriever is None or not terms:
            return {}
        vocab = built.retriever.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return {}
        raw = built.retriever.get_scores(known)
        hits = np.nonzero(raw > 0)[0]
        return {built.ids[i]: float(raw[i]) for i in hits}


def _to_bm25s_tokens(corpus: list[list[str]]):
    """bm25s wants a Tokenized(ids, vocab) object; build it from our own token lists."""
    import bm25s

    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(tok, len(vocab)) for tok in doc] for doc in corpus]
    return bm25s.tokenization.Tokenized(ids=ids, vocab=vocab)
