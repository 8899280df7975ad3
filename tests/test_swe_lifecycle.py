"""Test processes of a verification never outlive it: at the time limit, and when the process running
``verify`` is killed, every test process dies and the attempt's directory is removed."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from seasoned.envs.swe import SWEEnv
from seasoned.tools import bwrap

pytestmark = pytest.mark.skipif(not bwrap.status().usable, reason=f"bwrap unusable here: {bwrap.status().reason}")

CALLER = """
import asyncio, sys
from seasoned.envs.swe import SWEEnv
env = SWEEnv(sys.argv[1])
asyncio.run(env.verify(env.tasks()[0], ""))
"""


def _instance(tmp_path: Path, marker: str) -> Path:
    """A repository whose one test starts ``sleep <marker>`` (how the host's /proc finds it)."""
    repo = tmp_path / "slow"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_slow.py").write_text(
        f"import subprocess\n\ndef test_sleeps():\n    subprocess.run(['sleep', '{marker}'])\n")
    record = {"instance_id": "slow-1", "repo": str(repo), "problem_statement": "slow", "FAIL_TO_PASS":
              ["tests/test_slow.py::test_sleeps"], "test_patch": "--- /dev/null\n+++ b/N.txt\n@@ -0,0 +1 @@\n+x\n"}
    path = tmp_path / "slow.jsonl"
    path.write_text(json.dumps(record) + "\n")
    return path


def _sleepers(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", marker.encode()]:
            found.append(int(pid))
    return found


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _attempts(tmp: Path) -> list[Path]:
    return [p for p in tmp.iterdir() if p.name.startswith("seasoned-swe-")]


def _marker() -> str:
    return f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"


async def test_time_limit_kills_the_tests_and_removes_the_attempt(tmp_path, monkeypatch):
    marker = _marker()
    attempts = tmp_path / "tmp"
    attempts.mkdir()
    monkeypatch.setenv("TMPDIR", str(attempts))
    monkeypatch.setattr("tempfile.tempdir", None)
    env = SWEEnv(_instance(tmp_path, marker), test_timeout=3)
    verdict = await env.verify(env.tasks()[0], "")
    assert not verdict.passed and any("time limit" in n for n in verdict.details["notes"]), verdict.details
    assert _sleepers(marker) == [] and _attempts(attempts) == []


def test_killing_the_caller_kills_the_tests_and_removes_the_attempt(tmp_path):
    marker = _marker()
    attempts = tmp_path / "tmp"
    attempts.mkdir()
    env = {**os.environ, "TMPDIR": str(attempts)}
    caller = subprocess.Popen([sys.executable, "-c", CALLER, str(_instance(tmp_path, marker))], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = _wait_for(lambda: _sleepers(marker) or caller.poll() is not None, 120)
        assert started and caller.poll() is None, caller.stderr.read().decode()[-2000:] if caller.poll() else ""
        assert _attempts(attempts)
    finally:
        caller.send_signal(signal.SIGKILL)
        caller.wait()
    assert _wait_for(lambda: not _sleepers(marker), 30), "test processes survived their caller"
    assert _wait_for(lambda: not _attempts(attempts), 30), f"left behind: {_attempts(attempts)}"
