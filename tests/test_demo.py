"""The README's main job, end to end on the embedded model (one short stream: memory off, the static
2-shot reference, memory on)."""

import pytest
from rich.console import Console

pytestmark = pytest.mark.real_model


def test_demo_runs_the_stream_off_static_and_on_and_plots_them(tmp_path, monkeypatch):
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.delenv("SEASONED_DB_URL", raising=False)
    from seasoned import demo

    console = Console(record=True, width=120)
    summary = demo.run(tasks=4, strategy="adaptive-2", repeat=0.5, seed=1, console=console)
    output = console.export_text()
    assert summary["off"]["n"] == summary["static"]["n"] == summary["on"]["n"] == 4
    assert summary["repeats"] >= 1
    assert "memory off: task 1/4" in output and "memory on: task 4/4" in output
    assert "static 2-shot: task 4/4" in output and "reference: a fixed hand-written 2-shot prompt" in output
    assert "memory: channel" in output and "seasoned-admin" in output
    assert summary["on"]["tokens"] > 0 and summary["off"]["tokens"] > 0
    assert (tmp_path / "demo" / "stream.png").stat().st_size > 5000


def test_demo_stream_repeats_earlier_questions_deterministically():
    from seasoned import demo

    stream = demo.stream_tasks(20, seed=3, repeat=0.3)
    assert stream == demo.stream_tasks(20, seed=3, repeat=0.3)
    ids = [t.id for t in stream]
    assert len(set(ids)) < len(ids)
    assert all(t.env == "addition" and t.difficulty == 2 for t in stream)
