"""The README's main job, end to end on the embedded model (one short task stream)."""

import pytest
from rich.console import Console

pytestmark = pytest.mark.real_model


def test_demo_runs_a_stream_learns_and_writes_its_plot(tmp_path, monkeypatch):
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.delenv("SEASONED_DB_URL", raising=False)
    from seasoned import demo

    console = Console(record=True, width=120)
    summary = demo.run(tasks=2, stages=2, budget=300, seed=1, console=console)
    output = console.export_text()
    assert summary["tasks"] == 2
    assert 0 < summary["tokens"] <= 2 * 300
    assert summary["memory_items"] >= 4  # at least the allocation records of 2 tasks x 2 stages
    assert "allocate s1" in output and "plan (env)" in output and "seasoned-admin" in output
    assert (tmp_path / "demo" / "stream.png").stat().st_size > 5000
