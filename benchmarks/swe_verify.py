"""Time of one ``swe`` verification on the generated ``humandelta`` instance (667 tests), attempt after
attempt: checkout, install (into the attempt's own venv, pip's cache shared by attempts) and the one
test run, each timed.

    python -m seasoned.benchmarks.swe_verify [--attempts 3] [--install "pip install -e . pytest"] [--fresh-cache]
    python -m seasoned.benchmarks.swe_verify --file swe.jsonl --repos repos/ [--instance ID]   # any dataset

The default install is the instance's own (offline: ``--no-build-isolation --no-index``). With
``--install "pip install -e . pytest"`` pip builds in an isolated environment and fetches setuptools
from PyPI on the first attempt; later attempts take it from the shared cache. ``--fresh-cache`` starts
from an empty SEASONED_HOME, so the first attempt is a cold one. Target (issue 13): under 2 minutes
per verification on a 2-core machine, the install included after the first time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time

from seasoned.envs.swe import SWEEnv, fixture_gen


async def measure(attempts: int, install: str | None, file: str | None = None, repos: str | None = None,
                  instance_id: str | None = None) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="swe-bench-") as tmp:
        if file is None:
            file, repos = fixture_gen.build(tmp), os.path.join(tmp, "repos")
        env = SWEEnv(file, repos=repos)
        instance = env.instance(instance_id) if instance_id else env.instances[0]
        if install:
            instance.install = install
        rows = []
        for number in range(1, attempts + 1):
            started = time.perf_counter()
            verdict = await env.verify(env.get_task(instance.instance_id), instance.patch)
            row = {"attempt": number, "resolved": verdict.passed, "seconds": round(time.perf_counter() - started, 1),
                   "phases": verdict.details.get("seconds", {}),
                   "tests": len(instance.fail_to_pass) + len(instance.pass_to_pass)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--install", default=None, help="Install command instead of the instance's own.")
    parser.add_argument("--fresh-cache", action="store_true", help="Start with an empty SEASONED_HOME.")
    parser.add_argument("--file", default=None, help="A SWE-bench JSONL (default: the generated humandelta).")
    parser.add_argument("--repos", default=None, help="Its repositories directory.")
    parser.add_argument("--instance", default=None, help="Which instance (default: the first).")
    args = parser.parse_args()
    if args.fresh_cache:
        os.environ["SEASONED_HOME"] = tempfile.mkdtemp(prefix="swe-bench-home-")
    rows = asyncio.run(measure(args.attempts, args.install, args.file, args.repos, args.instance))
    first, later = rows[0]["seconds"], [r["seconds"] for r in rows[1:]]
    print(f"{args.instance or 'first instance'} ({rows[0]['tests']} tests): first verification {first}s"
          + (f", later ones {min(later)}-{max(later)}s" if later else "")
          + f"; all resolved: {all(r['resolved'] for r in rows)}")


if __name__ == "__main__":
    main()
