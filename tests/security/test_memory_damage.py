"""A damaged Chroma index is moved aside and rebuilt from SQL on open, with one warning (issue 14)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from seasoned.memory import MemoryBank, MemoryItem

CONTENTS = ["Add the tens first, then the ones.", "Check the units of every quantity.",
            "Read the last 50 lines of the log first."]


def make_bank(tmp_path: Path) -> tuple[str, Path, list[str]]:
    url = f"sqlite:///{tmp_path / 'mem.db'}"
    with MemoryBank.open(url, namespace="ops") as bank:
        ids = [bank.add(MemoryItem(kind="strategy", title=f"tip {i}", content=c), namespace="ops").item.id
               for i, c in enumerate(CONTENTS)]
        bank.add(MemoryItem(kind="lesson", content="Timeouts need retries with backoff."), namespace="other")
    return url, tmp_path / "mem.db.chroma", ids


def truncate(folder: Path) -> None:
    database = folder / "chroma.sqlite3"
    database.write_bytes(database.read_bytes()[:1000])


def zero(folder: Path) -> None:
    database = folder / "chroma.sqlite3"
    database.write_bytes(b"\0" * database.stat().st_size)


def replace_with_file(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_text("not a folder")


def garbage(folder: Path) -> None:
    (folder / "chroma.sqlite3").write_bytes(b"SQLite format 3\0" + b"\xff" * 8000)


@pytest.mark.parametrize("damage", [truncate, zero, replace_with_file, garbage])
def test_a_damaged_index_is_rebuilt_from_sql_with_one_warning(tmp_path, caplog, damage):
    url, folder, ids = make_bank(tmp_path)
    damage(folder)
    with caplog.at_level(logging.WARNING, logger="seasoned.memory.index"):
        bank = MemoryBank.open(url, namespace="ops")
    try:
        warnings = [r for r in caplog.records if r.name == "seasoned.memory.index"]
        assert len(warnings) == 1 and "damaged" in warnings[0].getMessage()
        assert "rebuilding it from SQL" in warnings[0].getMessage()
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("mem.db.chroma.damaged-")]
        assert len(aside) == 1  # kept for inspection, not deleted
        assert bank.index.count("ops") == len(ids) and bank.index.count("other") == 1
        hits = bank.retrieve("units of quantities", k=1, track=False)
        assert hits and hits[0].item.id == ids[1]
        assert bank.stats()["pending_index"] == 0
    finally:
        bank.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seasoned.memory.index"):
        MemoryBank.open(url, namespace="ops").close()  # healthy again: no warning, nothing moved
    assert not [r for r in caplog.records if r.name == "seasoned.memory.index"]
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("mem.db.chroma.damaged-")]) == 1
