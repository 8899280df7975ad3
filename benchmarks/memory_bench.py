"""Memory bank speed: add throughput and retrieve p50/p95 at 1k, 10k and 100k items (not a test).

    .venv/bin/python -m seasoned.benchmarks.memory_bench            # or: python benchmarks/memory_bench.py
    .venv/bin/python benchmarks/memory_bench.py --sizes 1000 10000 --queries 30

Add throughput uses the real embedding model. The 1k bank holds real embeddings; the 10k and 100k
banks are filled with random unit vectors (embedding 100k texts on a 2-core CPU takes too long), which
leaves retrieval latency representative (the query is still embedded by the real model). Also measured:
one Chroma collection per namespace vs a shared collection with a ``where`` namespace filter.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

import numpy as np

WORDS = ["timeout", "retry", "cache", "index", "parser", "config", "token", "budget", "planner", "solver", "critic", "verifier", "graph", "node", "error", "exception", "division", "zero", "overflow", "string", "list", "dict", "sort", "search", "merge", "heap", "queue", "stack", "tree", "socket", "http", "json", "yaml", "regex", "unicode", "path", "file", "lock", "thread", "async", "await", "batch", "vector", "embed"]


def text(rng: random.Random, i: int) -> str:
    ident = f"func_{i}"
    return f"{' '.join(rng.choice(WORDS) for _ in range(12))} see {ident}()"


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def main(argv: list[str] | None = None) -> int:
    from seasoned.memory import MemoryBank, MemoryItem, embedding

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    nrng = np.random.default_rng(0)
    root = tempfile.mkdtemp(prefix="seasoned-bench-")
    print(f"seasoned memory benchmark · cpu count {os.cpu_count()} · load avg {os.getloadavg()[0]:.1f}")

    t = time.perf_counter()
    embedding.get_model()
    print(f"embedding model load: {time.perf_counter() - t:.1f} s")

    # --- add throughput (real embeddings) ---------------------------------------------------------
    bank = MemoryBank.open(f"sqlite:///{root}/add.db", namespace="bench")
    items = [MemoryItem(content=text(rng, i)) for i in range(1000)]
    t = time.perf_counter()
    bank.add_many(items, dedup=True)
    dt = time.perf_counter() - t
    print(f"add_many (batched, dedup on, real embeddings): {1000 / dt:.0f} items/s (1000 items in {dt:.1f} s)")
    t = time.perf_counter()
    for i in range(100):
        bank.add(MemoryItem(content=text(rng, 10_000 + i)))
    dt = time.perf_counter() - t
    print(f"add (one at a time, dedup on, real embeddings): {100 / dt:.0f} items/s ({dt / 100 * 1000:.0f} ms per add)")
    bank.close()

    emb = []
    for i in range(30):
        t = time.perf_counter()
        embedding.embed_one(f"how do I fix error number {i} in the parser")
        emb.append(time.perf_counter() - t)
    print(f"query embedding alone: p50 {pct(emb, 50):.1f} ms, p95 {pct(emb, 95):.1f} ms")

    queries = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))) for _ in range(args.queries)]
    queries[::5] = [f"error in func_{rng.randint(0, 999)}" for _ in queries[::5]]
    print(f"\nretrieve k=5 ({args.queries} queries, query embedding included)")
    print(f"{'items':>8} {'vectors':>8} {'fill s':>8} {'first q ms':>11} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p50 track ms':>13}")
    for size in args.sizes:
        bank = MemoryBank.open(f"sqlite:///{root}/b{size}.db", namespace="bench")
        t = time.perf_counter()
        real = size <= 1000
        for start in range(0, size, 5000):
            n = min(5000, size - start)
            chunk = [MemoryItem(content=text(rng, start + i)) for i in range(n)]
            bank.add_many(chunk, dedup=False, embeddings=None if real else unit(nrng, n))
        fill = time.perf_counter() - t
        t = time.perf_counter()
        bank.retrieve(queries[0], k=5, track=False)  # builds the BM25 index
        first = (time.perf_counter() - t) * 1000
        lat = []
        for q in queries:
            t = time.perf_counter()
            bank.retrieve(q, k=5, track=False)
            lat.append(time.perf_counter() - t)
        tracked = []
        for q in queries[:20]:
            t = time.perf_counter()
            bank.retrieve(q, k=5, track=True)
            tracked.append(time.perf_counter() - t)
        print(f"{size:>8} {'real' if real else 'random':>8} {fill:>8.1f} {first:>11.0f} {pct(lat, 50):>8.1f} "
              f"{pct(lat, 95):>8.1f} {pct(tracked, 50):>13.1f}")
        if size == max(args.sizes):
            compare_filter(bank, size, nrng)
        bank.close()
    return 0


def compare_filter(bank, size: int, nrng: np.random.Generator) -> None:
    """Per-namespace collection (what the bank does) vs one shared collection with a where filter."""
    col = bank.index.collection("bench")
    shared = bank.index.client.create_collection("bench-shared", embedding_function=None,
                                                 configuration={"hnsw": {"space": "cosine"}})
    for start in range(0, size, 4000):
        n = min(4000, size - start)
        shared.add(ids=[f"s{start + i}" for i in range(n)], embeddings=unit(nrng, n),
                   metadatas=[{"namespace": f"ns{(start + i) % 10}"} for i in range(n)])
    qs = unit(nrng, 30)
    per_ns, filtered = [], []
    for q in qs:
        t = time.perf_counter()
        col.query(query_embeddings=[q], n_results=24, include=["distances"])
        per_ns.append(time.perf_counter() - t)
        t = time.perf_counter()
        shared.query(query_embeddings=[q], n_results=24, where={"namespace": "ns3"}, include=["distances"])
        filtered.append(time.perf_counter() - t)
    print(f"\nChroma query at {size} vectors: own collection p50 {pct(per_ns, 50):.1f} ms · "
          f"shared collection + where(namespace) p50 {pct(filtered, 50):.1f} ms "
          f"({pct(filtered, 50) / max(pct(per_ns, 50), 1e-6):.0f}x)")


if __name__ == "__main__":
    sys.exit(main())
