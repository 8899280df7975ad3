"""Cold ``seasoned-admin search``: wall time of a fresh process on an existing bank (not a test).

    .venv/bin/python benchmarks/admin_cold.py                  # 200 items, 3 runs, median
    .venv/bin/python benchmarks/admin_cold.py --items 200 --runs 5 --floor

Builds a bank in a temporary SEASONED_HOME (real embeddings; that first load of the embedder writes its
ONNX export into the home), then times ``seasoned-admin search QUERY`` in new processes, each with a query
it has not seen. ``--floor`` also times the parts: starting Python, importing the bank, the embedder's
load and one query through the ONNX export, and for comparison the same through sentence-transformers
(which imports torch, transformers and scikit-learn). Each ends with ``os._exit``, as the search does.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seasoned.settings import apply_offline_defaults

WORDS = ["timeout", "retry", "cache", "index", "parser", "config", "token", "budget", "planner", "solver", "critic", "verifier", "graph", "node", "error", "exception", "division", "zero", "overflow", "string", "list", "dict", "sort", "search", "merge", "heap", "queue", "stack", "tree", "socket", "http", "json", "yaml", "regex", "unicode", "path", "file", "lock", "thread", "async", "await", "batch", "vector", "embed"]
ONE_QUERY = "from seasoned.memory import embedding; embedding.embed_one('how do I retry a flaky socket call')"
WITHOUT_EXPORT = ("from seasoned.memory import embedding, onnx_embedder; "
                  "onnx_embedder.export = lambda model, target: False; "
                  "onnx_embedder.export_dir = lambda home, folder: home / 'no-export'; ")
NO_TEARDOWN = "; import os; os._exit(0)"  # as the search does: the floor, not Python's teardown of torch


def build(home: Path, items: int) -> None:
    """A bank of ``items`` items in ``home`` (done in this process; the timed ones are fresh)."""
    from seasoned.memory import MemoryBank, MemoryItem

    rng = random.Random(7)
    with MemoryBank.open(f"sqlite:///{home / 'memory.db'}", namespace="default") as bank:
        bank.add_many([MemoryItem(kind=rng.choice(["strategy", "lesson", "note"]), title=f"tip {i}",
                                  content=f"{' '.join(rng.choice(WORDS) for _ in range(14))} see func_{i}()")
                       for i in range(items)], dedup=False)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and CPU seconds (user + system) of the child: on a shared machine the CPU time
    moves less with the load than the wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(runs: list[tuple[float, float]]) -> str:
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    return (f"median {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU "
            f"(wall: {', '.join(f'{w:.2f}' for w in walls)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--floor", action="store_true", help="also time the parts of a cold search")
    args = parser.parse_args(argv)
    admin = str(Path(sys.executable).with_name("seasoned-admin"))
    with tempfile.TemporaryDirectory(prefix="seasoned-cold-") as tmp:
        home = Path(tmp)
        apply_offline_defaults()  # in this process and, through the environment, in the timed ones
        os.environ["SEASONED_HOME"] = str(home)
        os.environ.pop("SEASONED_DB_URL", None)
        os.environ.pop("SEASONED_CHROMA_URL", None)
        env = dict(os.environ)
        build(home, args.items)
        queries = [f"{random.Random(i).choice(WORDS)} {random.Random(i + 99).choice(WORDS)} func_{i}"
                   for i in range(args.runs)]
        times = [timed([admin, "search", query, "-k", "5"], env) for query in queries]
        print(f"cold `seasoned-admin search` ({args.items} items): {summary(times)}")
        if args.floor:
            python = [sys.executable, "-c"]
            steps = {"python + import the bank": python + ["import seasoned.memory.bank" + NO_TEARDOWN],
                     "python + ONNX embedder load + one query": python + [ONE_QUERY + NO_TEARDOWN],
                     "python + sentence-transformers load + one query (no export)":
                     python + [WITHOUT_EXPORT + ONE_QUERY + NO_TEARDOWN],
                     "python + import chromadb": python + ["import chromadb" + NO_TEARDOWN],
                     "python alone": python + ["pass"]}
            for name, cmd in steps.items():
                print(f"  {name}: {summary([timed(cmd, env) for _ in range(args.runs)])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
