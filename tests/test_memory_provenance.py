"""Failed runs never leave items marked verified (issue 23 point 4: a fresh app stored only "allocation" records
of failed runs, each flagged verified)."""

from __future__ import annotations

from seasoned.graphs import Agent
from seasoned.memory import MemoryBank
from seasoned.models import scripted


def test_a_failed_checked_run_stores_nothing_verified(tmp_path):
    scripted.register("always-wrong", fn=lambda messages, params: "2 plus 3 is 6.\nAnswer: 6")
    with MemoryBank.open(f"sqlite:///{tmp_path / 'memory.db'}", namespace="app",
                         chroma_path=str(tmp_path / "chroma")) as bank:
        agent = Agent("scripted/always-wrong", memory=bank, namespace="app", strategy="adaptive-2",
                      checker=lambda text: text.strip().endswith("5"), checkpoint=False,
                      db_url=f"sqlite:///{tmp_path / 'runs.db'}")
        try:
            result = agent.run("What is 2 + 3?")
        finally:
            agent.close()
        assert not result.verified
        items = bank.list(limit=100)
        assert {item.kind for item in items} >= {"allocation", "lesson"}  # the failure was kept ...
        assert [item.kind for item in items if item.verified] == []  # ... and none of it says verified
        allocation = next(item for item in items if item.kind == "allocation")
        assert allocation.source == "failure" and allocation.data["success"] is False


def test_an_allocation_record_is_verified_only_when_its_run_succeeded(tmp_path):
    with MemoryBank.open(f"sqlite:///{tmp_path / 'memory.db'}", namespace="app") as bank:
        failed = bank.record_allocation("general", budget={}, spent={"tokens": 40}, success=False, run_id="r1")
        passed = bank.record_allocation("general", budget={}, spent={"tokens": 30}, success=True, run_id="r2")
    assert not failed.verified and passed.verified
