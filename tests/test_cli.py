"""The `seasoned` command: thin over the Python API, one clear error line and exit 2 for mistakes."""

import json
import re
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
    (["run", "--env", "arithmetic", "--env-opt", "novalue", "-m", "scripted/cli-x"], "expected KEY=VALUE"),
    (["run", "--env", "arithmetic", "--env-opt", "colour=3", "-m", "scripted/cli-x"], "bad option(s) ['colour']"),
    (["run", "--env", "swe", "--env-file", "/no/such.jsonl", "-m", "scripted/cli-x"], "is not a file"),
    (["run", "hi", "--env-opt", "a=1", "-m", "scripted/cli-x"], "need --env"),
    (["run", "hi", "--plan", "--allocation", "lucky", "-m", "scripted/cli-x"], "lucky"),
    (["run", "--resume", "feedbeef", "-m", "scripted/cli-x"], "not found"),
    (["run", "--resume", "", "-m", "scripted/cli-x"], "--resume: give a run id"),
    (["run", "What is 2 + 2?", "-m", "local/missing.gguf"], "GGUF file not found"),
    (["run", "--env", "arithmetic", "--n", "1", "-m", "local/missing.gguf"], "GGUF file not found"),
    (["bench", "--env", "addition", "--n", "1", "--model", "local/missing.gguf"], "memory off] failed: ModelConfigError"),
    (["envs", "check", "swe", "/no/such.jsonl", "--env-opt", "colour=3"], "--env-opt: got an unexpected"),
    (["bench", "--env", "addition", "--env-opt", "colour=3", "--model", "scripted/cli-x"], "bad option(s)"),
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
    code, _, err = seasoned(monkeypatch, capsys, "bench", "--env", "addition", "--strategy", "single,best_of_n-2",
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


def test_a_refused_bench_env_option_leaves_the_registry_as_it_was(monkeypatch, capsys, db):
    from seasoned.envs import get_env

    code, _, err = seasoned(monkeypatch, capsys, "bench", "--env", "addition", "--env-opt", "colour=3")
    assert code == 2 and "colour" in err
    get_env("addition").close()  # still the plain environment for everyone else in this process


def recording_env(monkeypatch, name: str, env_class) -> list[dict]:
    """Registers ``name`` as ``env_class`` built with any options; returns the options of every build."""
    from seasoned.envs.registry import _CUSTOM, register_env

    seen: list[dict] = []

    def factory(**options):
        seen.append(options)
        return env_class()

    register_env(name, factory)
    monkeypatch.setitem(_CUSTOM, name, factory)
    return seen


def test_env_opt_and_env_file_reach_the_environment(monkeypatch, capsys, db):
    from seasoned.envs.arithmetic import ArithmeticEnv

    seen = recording_env(monkeypatch, "cli-opts", ArithmeticEnv)
    data = db / "mine.jsonl"
    data.write_text("{}\n")
    scripted.register("cli-opt", fn=lambda messages, params: "Answer: 3")
    code, _, err = seasoned(monkeypatch, capsys, "run", "--env", "cli-opts", "--n", "1", "-m", "scripted/cli-opt",
                              "--env-opt", "scale=2", "--env-opt", "label=two words", "--env-opt", 'tags=["a"]',
                              "--env-file", str(data), "--quiet")
    assert code == 0, err
    assert seen == [{"scale": 2, "label": "two words", "tags": ["a"], "path": str(data)}]


def test_run_plan_with_an_allocation_policy(monkeypatch, capsys, db):
    scripted.register("cli-plan", fn=lambda messages, params: "Answer: 42")
    code, out, err = seasoned(monkeypatch, capsys, "run", "What is 40 + 2, then double it?", "--plan",
                              "--allocation", "uniform", "-m", "scripted/cli-plan", "--strategy", "single", "--json")
    assert code == 0, err
    [result] = json.loads(out)
    assert result["subtasks"] and all(s["allocation"] for s in result["subtasks"])
    code, out, _ = seasoned(monkeypatch, capsys, "runs", "show", result["run_id"][:8], "--json")
    trace = json.loads(out)
    assert trace["run"]["options"]["allocation"] == "uniform" and trace["run"]["options"]["multi_stage"]


def test_run_prints_its_full_id_and_runs_show_lists_turns(monkeypatch, capsys, db):
    def actor(messages, params):
        return "```action\nsubmit\n```" if len(messages) > 2 else "```action\nview .\n```"

    scripted.register("cli-steps", fn=actor)
    code, out, err = seasoned(monkeypatch, capsys, "run", "--env", "swe", "--n", "1", "-m", "scripted/cli-steps",
                              "--strategy", "single")
    assert code == 0, err
    run_id = re.search(r"run ([0-9a-f]{16})", out).group(1)
    assert "main-w1-0 turn 1: view(path='.')" in out and "main-w1-0 turn 2: submit()" in out
    assert "main-w1-0 episode: failed" in out
    code, out, err = seasoned(monkeypatch, capsys, "runs", "show", run_id[:10])
    assert code == 0, err
    assert "view(path='.')" in out and "submit()" in out
    assert re.search(r"failing.*tests/\S+::test_", out)


INTERRUPTED = """
import sys
from seasoned.models import scripted
from seasoned import cli
scripted.register("cli-slow", fn=lambda messages, params: "Answer: 42", delay=1.0)
sys.argv = ["seasoned", "run", "What is 40 + 2?", "-m", "scripted/cli-slow", "--strategy", "revise-4"]
cli.main()
"""


def test_ctrl_c_keeps_the_record_and_resume_by_prefix_counts_earlier_spend(monkeypatch, capsys, db):
    import os
    import signal
    import subprocess

    from seasoned.runs import RunStore

    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in child.stdout:  # interrupt once the first candidate is in
        if "candidate " in line:
            break
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    run_id = re.search(r"interrupted: resume with seasoned run --resume ([0-9a-f]{16})", err).group(1)
    before = RunStore.open().get_run(run_id)
    assert before.run.status == "interrupted" and before.run.calls >= 1
    assert before.run.spend["calls"] == before.run.calls

    model = scripted.register("cli-slow", fn=lambda messages, params: "Answer: 42")
    code, out, err = seasoned(monkeypatch, capsys, "run", "--resume", run_id[:6], "-m", "scripted/cli-slow",
                              "--json")
    assert code == 0, err
    [result] = json.loads(out)
    after = RunStore.open().get_run(run_id)
    assert result["run_id"] == run_id and after.run.status == "completed"
    assert result["spend"]["calls"] == after.run.calls == before.run.calls + model.calls
    assert result["spend"]["tokens"] == after.totals.total_tokens


def test_tables_fit_80_columns_with_whole_headers():
    import io
    from datetime import UTC, datetime

    from rich.console import Console
    from seasoned.cli.progress import summary_table
    from seasoned.cli.views import print_runs
    from seasoned.graphs.agent import RunResult
    from seasoned.models import Spend
    from seasoned.runs import RunSummary

    result = RunResult(run_id="a" * 16, task="t", answer="a rather long answer of many words", verified=True,
                       reward=1.0, stop_reason="verified by env:arithmetic after 3 waves of sampling",
                       spend=Spend(tokens=123456, usd=0.1234, seconds=12.5))
    now = datetime.now(UTC)
    run = RunSummary(id="b" * 16, namespace="default", task="Solve this long task " * 5, model="openai/gpt-4o-mini",
                     strategy="self_consistency-8", status="interrupted", verified=False, created_at=now,
                     started_at=now, tokens=98765, cost_usd=0.5, calls=12, seconds=99.0, resumes=0)
    for width, wide in ((80, False), (160, True)):
        out = io.StringIO()
        console = Console(file=out, width=width, color_system=None)
        console.print(summary_table([("What is the answer to this long question " * 3, result)], width=width))
        print_runs([run], console)
        lines = out.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        text = out.getvalue()
        for header in ("task", "answer", "ok", "reward", "tokens", "USD", "status", "interrupted", "123456"):
            assert header in text, (width, header)
        assert ("stop" in text) == wide and ("gpt-4o-mini" in text) == wide


def test_quiet_by_default_verbose_shows_third_party_output(monkeypatch):
    import logging

    from seasoned.cli import quiet_third_party

    keys = ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "TQDM_DISABLE")
    for key in keys:
        monkeypatch.delenv(key, raising=False)
    asyncio_logger = logging.getLogger("asyncio")
    monkeypatch.setattr(asyncio_logger, "level", logging.NOTSET)
    quiet_third_party(verbose=True)
    assert not any(key in __import__("os").environ for key in keys) and asyncio_logger.level == logging.NOTSET
    quiet_third_party(verbose=False)
    assert all(__import__("os").environ[key] for key in keys) and asyncio_logger.level == logging.CRITICAL


SERVE = """
import sys
from seasoned.models import scripted
from seasoned import cli
scripted.register("cli-serve", fn=lambda messages, params: "Answer: 42")
sys.argv = ["seasoned", "serve", "--port", sys.argv[1], "-m", "scripted/cli-serve"]
cli.main()
"""


def test_serve_stops_on_the_first_ctrl_c_after_serving_a_request(db):
    import os
    import signal
    import socket
    import subprocess
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # wait for the server (start-up only; not a timed assertion)
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60, json={
                    "model": "scripted/cli-serve", "messages": [{"role": "user", "content": "40 + 2?"}]})
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert reply.status_code == 200, reply.text
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)  # a second Ctrl-C was needed before the fix: it hung
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err[-2000:]
    assert "Task was destroyed" not in err and "Traceback" not in err


def test_run_reaches_an_openai_compatible_server_from_the_command_line(monkeypatch, capsys, db):
    from seasoned.graphs import agent as agent_module

    seen = {}
    real = agent_module.Gateway

    def spy(model, **kwargs):
        seen.update(kwargs)
        return real("scripted/cli-base", **{k: v for k, v in kwargs.items() if k not in ("api_base", "api_key")})

    scripted.register("cli-base", fn=lambda messages, params: "Answer: 42")
    monkeypatch.setattr(agent_module, "Gateway", spy)
    code, _, err = seasoned(monkeypatch, capsys, "run", "What is 40 + 2?", "-m", "openai/my-model", "--api-base",
                            "http://127.0.0.1:9/v1", "--api-key", "sk-local", "--strategy", "single", "--quiet")
    assert code == 0, err
    assert seen["api_base"] == "http://127.0.0.1:9/v1" and seen["api_key"] == "sk-local"


@pytest.mark.parametrize("command", [["runs", "show"], ["run", "-m", "scripted/cli-x", "--resume"]])
def test_an_ambiguous_run_id_prefix_names_the_matching_runs_and_exits_2(monkeypatch, capsys, db, command):
    from seasoned.runs import RunStore

    ids = ["abc1230000000001", "abc1230000000002"]
    with RunStore.open() as store:
        for run_id in [*ids, "abd1230000000003"]:
            store.start_run(run_id, task="What is 40 + 2?", model="scripted/cli-x", strategy="single")
    scripted.register("cli-x", fn=lambda messages, params: "Answer: 42")
    code, out, err = seasoned(monkeypatch, capsys, *command, "abc123")
    assert code == 2, out + err
    assert "ambiguous" in err and all(run_id in err for run_id in ids) and "abd1230000000003" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    code, out, err = seasoned(monkeypatch, capsys, "runs", "show", "abc1230000000002", "--json")
    assert code == 0, err
    assert json.loads(out)["run"]["status"] == "running"  # nothing was resumed or changed by the refusal


def test_bench_env_opt_and_env_file_reach_the_environment(monkeypatch, capsys, db):
    from seasoned.envs import get_env
    from seasoned.envs.addition import AdditionEnv

    seen = recording_env(monkeypatch, "cli-bench-opts", AdditionEnv)
    data = db / "mine.jsonl"
    data.write_text("{}\n")
    scripted.register("cli-bench-opt", fn=lambda messages, params: "Answer: 3")
    out = db / "grid"
    code, _, err = seasoned(monkeypatch, capsys, "bench", "--env", "cli-bench-opts", "--strategy", "single",
                            "--n", "2", "--model", "scripted/cli-bench-opt", "--out", str(out),
                            "--env-opt", "scale=2", "--env-opt", "label=two words", "--env-file", str(data))
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "per-task.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {row["env"] for row in rows} == {"cli-bench-opts"}
    assert seen and all(options == {"scale": 2, "label": "two words", "path": str(data)} for options in seen)
    seen.clear()
    get_env("cli-bench-opts").close()  # afterwards the registry builds it as it did before the bench
    assert seen == [{}]


def test_an_unreachable_api_base_is_one_error_line(monkeypatch, capsys, db):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = seasoned(monkeypatch, capsys, "run", "What is 2 + 2?", "-m", "openai/any",
                              "--api-base", f"http://127.0.0.1:{port}/v1", "--api-key", "k")
    assert code == 2 and f"could not reach http://127.0.0.1:{port}/v1 (api_base / --api-base)" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out


def test_run_plan_prints_the_plan_or_its_fallback_and_why(monkeypatch, capsys, db):
    def reply(messages, params):
        prompt = messages[-1]["content"]
        return "no idea }{" if "Split the task" in prompt else "Answer: 1"

    scripted.register("cli-plan", fn=reply)
    code, out, _ = seasoned(monkeypatch, capsys, "run", "First add 1 and 0. Then say the result.", "--plan",
                            "-m", "scripted/cli-plan", "--strategy", "single")
    assert code == 0 and "plan (steps): 2 subtask(s): s1 Add 1 and 0. (difficulty 0.50); s2 Say the result." in out
    assert "allocation (difficulty): s1 " in out and "subtask s1: answer '1'" in out
    code, out, _ = seasoned(monkeypatch, capsys, "run", "Do something.", "--plan", "-m", "scripted/cli-plan",
                            "--strategy", "single")
    assert code == 0 and "plan: one subtask (fallback): planner: unusable output" in out
    run_id = next(x for x in out.splitlines() if "verified ·" in x).rsplit(" ", 1)[-1]
    code, shown, _ = seasoned(monkeypatch, capsys, "runs", "show", run_id)
    assert "fallback: 1 subtask(s); planner: unusable output" in " ".join(shown.split())
