"""The same bank on a real PostgreSQL 15 server started by this test (skipped when none can start)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from seasoned.memory import Action, MemoryBank, MemoryItem

pytestmark = pytest.mark.postgres
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def pg_url():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 binaries not found under /usr/lib/postgresql/15/bin")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'seasoned[postgres]')")
    root = Path(tempfile.mkdtemp(prefix="seasoned-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    os.chmod(root, 0o700)
    init = _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    port = _free_port()
    start = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                         f"-h 127.0.0.1 -p {port} -k {root}", "start")
    if start.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_bank_on_postgres(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SEASONED_DB_URL", pg_url)
    bank = MemoryBank.open(namespace="pg", chroma_path=tmp_path / "chroma")
    try:
        first = bank.add(MemoryItem(kind="strategy", title="24 game", content="Multiply pairs first to reach 24."))
        again = bank.add(MemoryItem(kind="strategy", title="24 game",
                                    content="Multiply pairs first to reach 24. Check division last."))
        assert first.action is Action.ADD and again.action is Action.UPDATE
        bank.add(MemoryItem(kind="lesson", content="parse_config raised KeyError on a missing section.",
                            source="failure", data={"exception": "KeyError"}))
        assert bank.retrieve("KeyError parse_config", k=1)[0].item.kind == "lesson"
        bank.record_outcome([first.item.id], success=True)
        assert [v.version for v in bank.history(first.item.id)] == [1, 2]
        bank.record_allocation("plan", budget={"tokens": 100}, spent={"tokens": 40}, success=True)
        assert bank.allocations("plan")[0]["spent"] == {"tokens": 40}
        stats = bank.stats()
        assert stats["active"] == 3 and stats["database"].startswith("postgresql")
        dump = tmp_path / "pg.jsonl"
        bank.export_jsonl(dump)
        bank.delete(first.item.id, hard=True)
        assert bank.import_jsonl(dump)["imported"] == 1
        assert bank.get(first.item.id).content.endswith("Check division last.")
    finally:
        bank.close()
    reopened = MemoryBank.open(namespace="pg", chroma_path=tmp_path / "chroma")
    assert len(reopened.list()) == 3 and len(reopened.index.ids("pg")) == 3
    reopened.close()
