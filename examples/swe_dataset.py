"""Your own SWE-bench instances: a JSONL file in SWE-bench's published format, repositories on disk.

    python examples/swe_dataset.py my_instances.jsonl [INSTANCE_ID]   # default: the shipped fixtures
    seasoned run --env swe --env-file my_instances.jsonl --env-opt repos=./repos   # the same from the CLI

Each line needs ``instance_id``, ``repo`` (a path relative to the file, a ``.bundle``, or ``owner/name``
found under ``repos``/``SEASONED_SWE_REPOS``), ``base_commit``, ``problem_statement``, ``test_patch``
and ``FAIL_TO_PASS`` (optionally ``PASS_TO_PASS``, ``patch``, ``install``, ``test_cmd``). The agent acts
in a fresh checkout (tools: bash, view, search, edit, create, submit) inside the sandbox; the judge applies
its diff and the tests to a clean tree and runs them there. Check a file first with
``seasoned envs check swe FILE`` (each reference patch must resolve its instance).
"""

import os
import sys

from seasoned.envs import get_env
from seasoned.graphs import Agent

path = sys.argv[1] if len(sys.argv) > 1 else None  # None: the three shipped fixture instances
env = get_env("swe", path=path, repos=os.environ.get("SEASONED_SWE_REPOS"))
task = env.get_task(sys.argv[2]) if len(sys.argv) > 2 else env.tasks(n=1)[0]
agent = Agent(os.environ.get("SEASONED_MODEL", "local/smollm2-135m"), strategy="single", max_steps=15,
              budget={"max_tokens": 30_000})
try:
    for event in agent.stream(task, env=env):  # one line per model turn, as it happens
        if event.kind == "turn":  # the action read from the reply (or why none was), and what came back
            turn = event.data
            print(f"  turn {turn['index']}: {turn['action'] or 'no action: ' + turn['error']} -> "
                  f"{' '.join(turn['observation'].split())[:100]}")
        elif event.kind == "episode":  # the judge's verdict on one episode
            print(f"  tests: passed={event.data['passed']} failing={event.data.get('failing_tests', [])}")
        elif event.kind == "result":
            result = event.data["result"]
finally:
    env.close()
    agent.close()

print(f"{task.id}: resolved={result.verified} tokens={result.spend.tokens}")
print(f"steps and failing tests: seasoned runs show {result.run_id}")
