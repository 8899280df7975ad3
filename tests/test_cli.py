"""The `seasoned` command: thin over the Python API, one clear error line and exit 2 for mistakes."""

import json
import sys

import pytest

from seasoned.cli import main
from seasoned.models import scripted


def seasoned(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["seasoned", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SEASONED_DB_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    return tmp_path


def test_version(monkeypatch, capsys):
    code, out, _ = seasoned(monkeypatch, capsys, "--version")
    assert code == 0 and out.startswith("seasoned ")


def test_chat_prints_reply_and_spend(monkeypatch, capsys):
    scripted.register("cli-chat", fn=lambda messages, params: "Paris is the capital.")
    code, out, _ = seasoned(monkeypatch, capsys, "chat", "Capital of France?", "-m", "scripted/cli-chat")
    assert code == 0
    assert "Paris is the capital." in out and "tokens" in out


@pytest.mark.parametrize("args, fragment", [
    (["chat", "hi", "-m", "nonsense"], "not a model string"),
    (["chat", "hi", "-m", "local/missing.gguf"], "GGUF file not found"),
    (["run", "hi", "-m", "scripted/cli-x", "--strategy", "beam"], "strategy 'beam' is unknown"),
    (["run", "--env", "no-such-env", "-m", "scripted/cli-x"], "no-such-env"),
])
def test_mistakes_give_one_error_line_and_exit_2(monkeypatch, capsys, db, args, fragment):
    scripted.register("cli-x", fn=lambda messages, params: "x")
    code, out, err = seasoned(monkeypatch, capsys, *args)
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_run_then_list_and_show_the_trace(monkeypatch, capsys, db):
    scripted.register("cli-run", fn=lambda messages, params: "Answer: 42")
    code, out, err = seasoned(monkeypatch, capsys, "run", "What is 40 + 2?", "-m", "scripted/cli-run",
                              "--strategy", "self_consistency-3", "--json")
    assert code == 0, err
    [result] = json.loads(out)
    assert result["answer"] == "42" and len(result["candidates"]) == 3
    code, out, _ = seasoned(monkeypatch, capsys, "runs", "list", "--json")
    assert code == 0 and result["run_id"] in out
    code, out, _ = seasoned(monkeypatch, capsys, "runs", "show", result["run_id"], "--json")
    trace = json.loads(out)
    assert trace["run"]["status"] == "completed" and len(trace["candidates"]) == 3
    assert trace["totals"]["calls"] == 3
    code, _, err = seasoned(monkeypatch, capsys, "runs", "show", "nope")
    assert code == 2 and "not found" in err


def test_run_on_an_environment(monkeypatch, capsys, db):
    scripted.register("cli-env", fn=lambda messages, params: "Answer: 3")
    code, out, err = seasoned(monkeypatch, capsys, "run", "--env", "arithmetic", "--n", "2", "-m",
                              "scripted/cli-env", "--strategy", "adaptive-4", "--quiet")
    assert code == 0, err
    assert "arithmetic" in out and "verified" in out


def test_envs_list(monkeypatch, capsys):
    code, out, _ = seasoned(monkeypatch, capsys, "envs", "list")
    assert code == 0
    for name in ("arithmetic", "game24", "humaneval", "swe", "miniwob"):
        assert name in out


def test_bench_writes_rows_summary_and_plot(monkeypatch, capsys, db):
    scripted.register("cli-bench", fn=lambda messages, params: "Answer: 3")
    out = db / "grid"
    code, stdout, err = seasoned(monkeypatch, capsys, "bench", "--env", "addition", "--strategy", "single,best_of_n-2",
                                 "--budget", "300,600", "--n", "3", "--model", "scripted/cli-bench", "--out", str(out))
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "per-task.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 3
    assert (out / "summary.json").exists() and (out / "accuracy_vs_tokens.png").stat().st_size > 5000


def test_serve_refuses_a_public_host_without_keys(monkeypatch, capsys):
    monkeypatch.delenv("SEASONED_API_KEYS", raising=False)
    code, out, err = seasoned(monkeypatch, capsys, "serve", "--host", "0.0.0.0", "--port", "0")
    assert code == 2
    assert "key" in (err + out).lower()
