"""`seasoned serve` in a process of its own, with scripted models, for the tests that kill, interrupt or
replicate a server (the CLI cannot register scripted models).

    python tests/serve_scripted.py --port P [--delay S] [--db URL] [--memory] [--keys k=ns,...]

Models: ``scripted/proc`` answers "Answer: 42" after ``--delay`` seconds (also read, per call, from the
file named by ``--delay-file`` when it exists, so a test can slow a running server down or speed it up);
the curator's calls get a valid proposal, so runs with memory on store an item each.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--delay-file")
    parser.add_argument("--db")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--strategy", default="single")
    parser.add_argument("--max-concurrent-per-key", type=int, default=64)
    parser.add_argument("--memory-channel", default="auto")
    args = parser.parse_args()

    from seasoned.agents import curator
    from seasoned.models import scripted
    from seasoned.server.runner import serve

    def reply(messages, params):
        if messages and messages[0]["content"].startswith(curator.SYSTEM[:40]):
            task = messages[-1]["content"]
            return json.dumps({"items": [{"kind": "strategy", "title": f"run note {hash(task) % 10**8}",
                                          "content": f"Seen: {task[-300:]}. Add the numbers, then check."}]})
        return "40 plus 2 makes 42.\nAnswer: 42"

    scripted.register("proc", fn=reply, delay=args.delay)
    if args.delay_file:
        _follow_delay_file(args.delay_file, args.delay)
    serve("127.0.0.1", args.port, model="scripted/proc", db_url=args.db, memory=args.memory,
          strategy=args.strategy, log_level="warning", max_concurrent_per_key=args.max_concurrent_per_key,
          memory_channel=args.memory_channel)


def _follow_delay_file(path: str, default: float) -> None:
    """Keep the scripted model's delay equal to the number in ``path`` (checked every 50 ms)."""
    import threading

    from seasoned.models import scripted

    def follow() -> None:
        while True:
            try:
                value = float(Path(path).read_text() or default)
            except (OSError, ValueError):
                value = default
            scripted.get("proc").delay = value
            time.sleep(0.05)

    threading.Thread(target=follow, daemon=True).start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what: str, seconds: float = 120.0):
    """Poll until ``predicate()`` is truthy (a deadline against hangs, not a speed test)."""
    import pytest

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


class ServerProcess:
    """``tests/serve_scripted.py`` on a free port (see there); kill -9 with ``kill()``."""

    def __init__(self, home: Path, db: str, *extra: str, delay_file: Path | None = None,
                 env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, __file__, "--port", str(self.port), "--db", db, *extra]
        if delay_file is not None:
            command += ["--delay-file", str(delay_file)]
        env = {**os.environ, "SEASONED_HOME": str(home), "SEASONED_DB_URL": db, **(env or {})}
        self.log = open(home / f"server-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self, seconds: float = 180.0) -> ServerProcess:
        def up() -> bool:
            assert self.process.poll() is None, Path(self.log.name).read_text()[-2000:]
            try:
                return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, "the server to start", seconds)
        return self

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self.log.close()


if __name__ == "__main__":
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    main()
