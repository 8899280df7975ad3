"""Crash safety and concurrency across processes: kill -9 mid-write, two writers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from seasoned.memory import MemoryBank
from seasoned.memory.db import ItemRow
from sqlalchemy import func, select

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from seasoned.memory import MemoryBank, MemoryItem
    url, tag, count, batch, real = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
    bank = MemoryBank.open(url, namespace="shared")
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    for start in range(0, count, batch):
        items = [MemoryItem(content=f"writer {tag} item {i}: " + " ".join(map(str, rng.integers(0, 10**6, 6))))
                 for i in range(start, min(count, start + batch))]
        if real:
            results = bank.add_many(items, dedup=False)
        else:
            vecs = rng.normal(size=(len(items), 384)).astype("float32")
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            results = bank.add_many(items, embeddings=vecs)
        for r in results:
            print(r.action.value, r.item.id, flush=True)
    print("DONE", flush=True)
""")


def _consistent(url: str) -> tuple[set[str], set[str], int]:
    bank = MemoryBank.open(url, namespace="shared")  # opening heals the index
    try:
        with bank.db.read() as s:
            active = set(s.scalars(select(ItemRow.id).where(ItemRow.namespace == "shared", ItemRow.status == "active")))
            pending = s.scalar(select(func.count()).select_from(ItemRow).where(ItemRow.indexed.is_(False)))
        return active, set(bank.index.ids("shared")), pending
    finally:
        bank.close()


def test_kill_9_during_a_1000_item_write_loses_nothing_and_leaves_no_orphans(tmp_path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, url, "k", "1000", "20", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    committed: list[str] = []
    deadline = time.time() + 240
    assert proc.stdout is not None
    while len(committed) < 200 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("ADD "):
            committed.append(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(committed) >= 200, "the writer did not get far enough before the deadline"
    active, indexed, pending = _consistent(url)
    assert set(committed) <= active  # every item whose add returned is there
    assert active == indexed  # every stored item indexed, no orphan vector
    assert pending == 0
    assert len(active) < 1000  # the kill really interrupted the write


def test_two_writer_processes_500_writes_each_all_present(tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    MemoryBank.open(url, namespace="shared").close()  # schema exists before the race starts
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, tag, "500", "5", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-2000:]
        assert "database is locked" not in err
        assert out.strip().endswith("DONE")
    ids = [line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("ADD ")]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    active, indexed, pending = _consistent(url)
    assert active == set(ids) and indexed == active and pending == 0
