"""The gold check of a SWE-bench JSONL: for each instance the reference patch must resolve it and an
empty patch must not. This is how a dataset (and the environment's install and test commands) is
validated before any model call is spent on it.

    rows = check_file("swe.jsonl", repos="repos/")     # [{"instance_id", "valid", "gold", "empty", ...}]
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from seasoned.errors import EnvError

from .env import SWEEnv


async def _judge(env: SWEEnv, instance_id: str, patch: str) -> dict:
    started = time.perf_counter()
    try:
        verdict = await env.verify(env.get_task(instance_id), patch)
    except EnvError as exc:  # the checkout or the install failed
        return {"resolved": False, "seconds": round(time.perf_counter() - started, 1), "error": str(exc)}
    details = verdict.details
    row = {"resolved": verdict.passed, "seconds": round(time.perf_counter() - started, 1),
           "FAIL_TO_PASS": _counts(details.get("FAIL_TO_PASS")), "PASS_TO_PASS": _counts(details.get("PASS_TO_PASS")),
           "failing": (details.get("FAIL_TO_PASS") or {}).get("failing", [])
           + (details.get("PASS_TO_PASS") or {}).get("failing", []),
           "phases": details.get("seconds", {})}
    if details.get("reason"):
        row["error"] = details["reason"]
    if details.get("notes"):
        row["notes"] = details["notes"]
    return row


def _counts(part: dict | None) -> str:
    return f"{part['passed']}/{part['total']}" if part else "-"


async def acheck_instances(env: SWEEnv, instance_ids: list[str] | None = None,
                           out: Callable[[dict], None] | None = None) -> list[dict]:
    """Gold and empty verdicts per instance; ``valid`` when gold resolves and empty does not."""
    ids = instance_ids or [i.instance_id for i in env.instances]
    rows = []
    for instance_id in ids:
        instance = env.instance(instance_id)
        row: dict = {"instance_id": instance_id}
        if not instance.patch:
            row.update(valid=False, error="the instance has no reference patch")
        else:
            row["gold"] = await _judge(env, instance_id, instance.patch)
            row["empty"] = await _judge(env, instance_id, "")
            problems = []
            if not row["gold"]["resolved"]:
                problems.append("the reference patch does not resolve it")
            if row["empty"]["resolved"]:
                problems.append("an empty patch resolves it")
            row["valid"] = not problems
            if problems:
                row["problems"] = problems
        rows.append(row)
        if out:
            out(row)
    return rows


def check_file(path: str | os.PathLike, *, instance_ids: list[str] | None = None,
               repos: str | os.PathLike | None = None, out: Callable[[dict], None] | None = None,
               **env_options) -> list[dict]:
    """``acheck_instances`` on a JSONL file (synchronous, for the CLI)."""
    env = SWEEnv(path, repos=repos, **env_options)
    try:
        for instance_id in instance_ids or []:
            env.instance(instance_id)  # an unknown id is an error before anything runs
        return asyncio.run(acheck_instances(env, instance_ids, out))
    finally:
        env.close()


def describe(row: dict) -> str:
    """One line per instance for a terminal."""
    if "gold" not in row:
        return f"INVALID  {row['instance_id']}: {row.get('error', '')}"
    gold, empty = row["gold"], row["empty"]
    status = "ok      " if row["valid"] else "INVALID "
    line = (f"{status} {row['instance_id']}  gold {'resolved' if gold['resolved'] else 'NOT resolved'} "
            f"(F2P {gold.get('FAIL_TO_PASS', '-')}, P2P {gold.get('PASS_TO_PASS', '-')}, {gold['seconds']}s)  "
            f"empty {'RESOLVED' if empty['resolved'] else 'not resolved'} "
            f"(F2P {empty.get('FAIL_TO_PASS', '-')}, P2P {empty.get('PASS_TO_PASS', '-')}, {empty['seconds']}s)")
    extra = []
    if gold.get("error"):
        extra.append(f"  gold: {gold['error'][:400]}")
    if not gold["resolved"] and gold.get("failing"):
        extra.append("  gold failing: " + ", ".join(gold["failing"][:10])
                     + (f" (+{len(gold['failing']) - 10} more)" if len(gold["failing"]) > 10 else ""))
    if empty.get("error"):
        extra.append(f"  empty: {empty['error'][:400]}")
    elif empty.get("failing"):
        extra.append("  empty failing: " + ", ".join(empty["failing"][:5])
                     + (f" (+{len(empty['failing']) - 5} more)" if len(empty["failing"]) > 5 else ""))
    return "\n".join([line, *extra])
