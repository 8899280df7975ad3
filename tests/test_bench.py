"""``seasoned bench`` grids on the scripted provider: rows, summary with intervals, plots, resume, memory
streams, Ray, and clear errors for bad options."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest
from rich.console import Console
from seasoned.benchmarks.grid import GridError, main, read_rows, run_bench
from seasoned.benchmarks.stats import wilson
from seasoned.envs import register_env
from seasoned.envs.addition import AdditionEnv
from seasoned.models import scripted

PNG = b"\x89PNG\r\n\x1a\n"
ROW_FIELDS = {"arm", "env", "task_id", "index", "strategy", "allocation", "budget", "memory", "model", "seed",
              "passed", "reward", "tokens", "usd", "calls", "seconds", "candidates", "stop_reason", "run_id"}


def adder(messages, params):
    """Right on samples whose seed is 2 mod 3, or when memory (notes or demonstrations) is in the prompt;
    else off by one."""
    text = messages[-1]["content"]
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)", text)[-1])
    remembered = "Notes from earlier tasks" in messages[0]["content"] or len(messages) > 2
    good = (params.get("seed") or 0) % 3 == 2 or remembered
    return f"Answer: {a + b if good else a + b + 1}"


def register_adder() -> None:
    """Also the Ray workers' set-up: a worker process has no scripted models until this runs."""
    scripted.register("bench-adder", fn=adder)


@pytest.fixture
def model():
    register_adder()
    return "scripted/bench-adder"


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000, path


def by_arm(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["arm"], []).append(row)
    return grouped


def test_grid_rows_summary_intervals_and_plot(tmp_path, model):
    console = quiet()
    summary = run_bench(tmp_path, env="addition", strategy="single,best_of_n-4,adaptive-4", budget="150,600",
                        n=6, model=model, workers=4, record=False, progress=False, console=console)
    rows = read_rows(tmp_path)
    assert len(rows) == 6 * 6 and all(ROW_FIELDS <= set(row) for row in rows)
    arms = by_arm(rows)
    assert len(arms) == 6
    task_ids = summary["tasks"]["addition"]
    for arm_rows in arms.values():  # the same tasks, at the same seed, in every arm
        assert sorted(r["task_id"] for r in arm_rows) == sorted(task_ids)
        assert {r["seed"] for r in arm_rows} == {0} and {r["allocation"] for r in arm_rows} == {None}

    stats = {(a["strategy"], a["budget"]): a for a in summary["arms"]}
    assert stats[("single", 600)]["correct"] == 0            # seed 0 is always off by one
    assert stats[("best_of_n-4", 600)]["correct"] == 6       # seeds 0..3 include 2: the check picks it
    assert stats[("best_of_n-4", 600)]["mean_tokens"] > stats[("single", 600)]["mean_tokens"]
    assert stats[("best_of_n-4", 150)]["mean_tokens"] < stats[("best_of_n-4", 600)]["mean_tokens"]  # capped
    for arm in summary["arms"]:
        assert arm["n"] == 6 and arm["accuracy"] == arm["correct"] / 6
        assert arm["ci95"] == [round(x, 4) for x in wilson(arm["correct"], 6)]
        assert "windows" not in arm and "subtask_tokens" not in arm
    assert json.loads((tmp_path / "summary.json").read_text())["arms"] == summary["arms"]

    assert summary["plots"] == ["accuracy_vs_tokens.png"]  # no multi-stage or memory data: no other plots
    assert_png(tmp_path / "accuracy_vs_tokens.png")
    printed = console.file.getvalue()
    assert "95% CI" in printed and "6/6" in printed and "0.610-1.000" in printed


def test_resume_skips_finished_rows_and_extends_the_grid(tmp_path, model):
    options = {"env": "addition", "strategy": "single,best_of_n-4", "n": 4, "model": model, "record": False,
               "progress": False, "console": quiet()}
    run_bench(tmp_path, **options)
    calls = scripted.get("bench-adder").calls
    run_bench(tmp_path, **options)
    assert scripted.get("bench-adder").calls == calls and len(read_rows(tmp_path)) == 8

    path = tmp_path / "per-task.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5]) + "\n" + lines[5][:30])  # killed mid-write: 5 rows and a torn line
    run_bench(tmp_path, **options)
    rows = read_rows(tmp_path)
    assert len(rows) == 8 and len({(r["arm"], r["task_id"]) for r in rows}) == 8

    summary = run_bench(tmp_path, **{**options, "strategy": "single,best_of_n-4,adaptive-4"})
    rows = read_rows(tmp_path)
    assert len(rows) == 12 and {r["strategy"] for r in rows[8:]} == {"adaptive-4"}
    assert [a["n"] for a in summary["arms"]] == [4, 4, 4]


def test_multi_stage_allocation_arms_and_subtask_spend_plot(tmp_path, model):
    summary = run_bench(tmp_path, env="sums", strategy="adaptive-4", allocation="uniform,difficulty", budget=2000,
                        n=2, model=model, workers=4, record=False, progress=False, console=quiet())
    rows = read_rows(tmp_path)
    assert sorted({r["allocation"] for r in rows}) == ["difficulty", "uniform"] and len(rows) == 4
    for row in rows:
        assert row["subtasks"] and all(s["kind"].startswith("add") and s["allocated"] for s in row["subtasks"])
        assert sum(s["tokens"] for s in row["subtasks"]) <= row["tokens"]
    for arm in summary["arms"]:
        assert arm["subtask_tokens"] and all(v > 0 for v in arm["subtask_tokens"].values())
    assert "subtask_spend.png" in summary["plots"]
    assert_png(tmp_path / "subtask_spend.png")


def test_memory_on_vs_off_over_a_stream(tmp_path, model):
    summary = run_bench(tmp_path, env="addition", strategy="single", memory="on,off", n=5, window=2, model=model,
                        workers=3, record=False, progress=False, console=quiet())
    arms = {a["memory"]: a for a in summary["arms"]}
    # Off: every single sample (seed 0) is wrong. On: task 0 fails and leaves a lesson; from then on the
    # channel bandit draws between no memory and that note, and learns that the note pays.
    assert arms[False]["correct"] == 0 and arms[True]["correct"] >= 2
    assert [w["n"] for w in arms[True]["windows"]] == [2, 2, 1]
    assert sum(w["correct"] for w in arms[True]["windows"][1:]) >= 2
    assert [w["success"] for w in arms[False]["windows"]] == [0.0, 0.0, 0.0]
    memory_rows = [r for r in read_rows(tmp_path) if r["memory"]]
    assert [r["index"] for r in memory_rows] == [0, 1, 2, 3, 4]  # the stream ran in order
    assert memory_rows[0]["memory_items"] == 0 and all(r["memory_items"] for r in memory_rows[1:])
    assert len(list((tmp_path / "memory").glob("*.db"))) == 1  # its own bank; the off arm has none
    assert "memory_stream.png" in summary["plots"]
    assert_png(tmp_path / "memory_stream.png")


class FlakyEnv(AdditionEnv):
    """The addition environment whose judge breaks on one task."""

    name = "flaky_addition"

    async def verify(self, task, answer):
        if task.id.endswith("-2"):
            raise RuntimeError("judge crashed")
        return await super().verify(task, answer)

    def tasks(self, n=None, seed=0, difficulty=None):
        return [AdditionEnv._make(self, 1, k) for k in range(n or 4)]


def test_a_failing_task_names_itself_and_keeps_finished_rows(tmp_path, model):
    register_env("flaky_addition", FlakyEnv)
    with pytest.raises(GridError, match=r"task flaky_addition-d1-2 of arm .*judge crashed.*rerun"):
        run_bench(tmp_path, env="flaky_addition", strategy="single", n=4, model=model, record=False,
                  progress=False, console=quiet())
    assert {r["task_id"] for r in read_rows(tmp_path)} <= {"flaky_addition-d1-0", "flaky_addition-d1-1",
                                                            "flaky_addition-d1-3"}
    assert (tmp_path / "per-task.jsonl").exists()


@pytest.mark.parametrize("options, message", [
    ({"strategy": "single,bogus"}, r"--strategy: strategy 'bogus' is unknown"),
    ({"budget": "400,lots"}, r"--budget: 'lots' is not a whole number"),
    ({"budget": "-5"}, r"--budget: token budgets must be positive"),
    ({"memory": "maybe"}, r"--memory: 'maybe' is not on or off"),
    ({"allocation": "greedy"}, r"--allocation: 'greedy' is unknown"),
    ({"env": "nope"}, r"--env/--difficulty: unknown environment 'nope'"),
    ({"env": "addition", "difficulty": 9}, r"difficulty must be in 1..4"),
    ({"n": 0}, r"--n: must be >= 1"),
    ({"strategy": "single,single"}, r"--strategy: 'single' is given twice"),
    ({"ray": "local", "memory": "on", "memory_url": "sqlite:///x.db"},
     r"--ray with --memory on needs a shared memory database: set SEASONED_DB_URL"),
    ({"ray": "local", "memory": "on,off", "memory_url": "postgresql+psycopg://u:secret@db/seasoned"},
     r"needs a Chroma server every worker reaches: set SEASONED_CHROMA_URL .* is db/seasoned$"),
])
def test_bad_options_give_one_clear_error(tmp_path, options, message, monkeypatch):
    monkeypatch.delenv("SEASONED_CHROMA_URL", raising=False)
    with pytest.raises(GridError, match=message):
        run_bench(tmp_path, model="scripted/bench-adder", progress=False, console=quiet(), **options)
    assert not (tmp_path / "per-task.jsonl").exists()


def test_grid_file_and_command_line(tmp_path, model, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"env: addition\nstrategy: [single, best_of_n-4]\nbudget: [600]\nn: 2\nmodel: {model}\n")
    summary = run_bench(tmp_path / "a", config=grid, strategy="single", record=False, progress=False,
                        console=quiet())
    assert [(a["strategy"], a["budget"], a["n"]) for a in summary["arms"]] == [("single", 600, 2)]

    (tmp_path / "bad.json").write_text('{"strategies": ["single"]}')
    assert main(["--out", str(tmp_path / "b"), "--config", str(tmp_path / "bad.json")]) == 2
    error = capsys.readouterr().out
    assert "unknown option(s) strategies" in error and "Traceback" not in error
    assert main(["--out", str(tmp_path / "c"), "--env", "addition", "--strategy", "best_of_n-4", "--budget",
                 "none", "--n", "2", "--model", model, "--no-record", "--no-progress"]) == 0
    assert len(read_rows(tmp_path / "c")) == 2 and read_rows(tmp_path / "c")[0]["budget"] is None


def test_ray_missing_is_one_clear_error(tmp_path, model, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(GridError, match=r"pip install 'seasoned\[ray\]'"):
        run_bench(tmp_path, env="addition", strategy="single", n=1, model=model, ray="local", record=False,
                  progress=False, console=quiet())


@pytest.mark.ray
def test_ray_rows_match_the_local_rows(tmp_path, model):
    ray = pytest.importorskip("ray")
    options = {"env": "addition", "strategy": "single,best_of_n-4", "budget": 600, "n": 2, "model": model,
               "record": False, "progress": False, "console": quiet()}
    run_bench(tmp_path / "local", workers=2, **options)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_bench(tmp_path / "ray", ray="local", setup=register_adder, **options)
    finally:
        ray.shutdown()

    def comparable(folder):
        drop = {"run_id", "seconds"}
        return sorted(json.dumps({k: v for k, v in r.items() if k not in drop}, sort_keys=True)
                       for r in read_rows(folder))

    assert comparable(tmp_path / "ray") == comparable(tmp_path / "local") and len(comparable(tmp_path / "ray")) == 4
    assert summary["plots"] == ["accuracy_vs_tokens.png"]


def test_simulated_env_curves_have_the_oracle_auc_and_tokens_to_reach(tmp_path):
    """On the simulator the oracle is known: the summary gives each curve's area relative to it, and the
    accuracy plot draws it."""
    from seasoned.models import sim

    sim.register(sim.mixed_world())
    summary = run_bench(tmp_path, env="sim", model="sim/mixed", strategy="adaptive-8,best_of_n-8",
                        budget="300,1200", n=8, max_tokens=200, record=False, progress=False, console=quiet())
    curves = summary["curves"]["sim"]
    assert set(curves) == {"adaptive-8", "best_of_n-8"}
    for figures in curves.values():
        assert 0 < figures["auc_vs_oracle"] <= 1.05
        assert set(figures["tokens_to_reach"]) == {"0.25", "0.50", "0.75"}
    assert (tmp_path / "accuracy_vs_tokens.png").read_bytes().startswith(PNG)
    assert all(a["mean_tokens"] <= a["budget"] for a in summary["arms"])
