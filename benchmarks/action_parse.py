"""How many of the actor's turns yield a parseable action, per environment and per way of asking (not a test).

    python -m seasoned.benchmarks.action_parse [--envs tools,swe,miniwob] [--episodes 3] [--max-steps 8]
                                                [--modes json,text] [--model local/smollm2-135m]

One acting episode per task (``agents.actor.run_actor``, as a run's candidate would act), on:
  - ``tools``: the tools example (examples/custom_checker_and_tools.py: price, multiply, answer);
  - ``swe``: the shipped SWE fixtures (sandboxed checkouts: bash, view, search, edit, create, submit);
  - ``miniwob``: MiniWoB++ pages in headless Chromium (click, type, press, select).
Modes: ``json`` asks for each action as JSON constrained to the tools' action schema (``response_format``,
a llama.cpp grammar on the embedded model); ``text`` is the plain-text action format (what models without
a schema get). A turn is parsed when an action was read from the reply; a turn cut by a model error counts
as unparsed. Prints one row per (environment, mode): episodes, turns, parsed turns and their share, the
episodes passed, tokens, seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import runpy
import time
from pathlib import Path
from typing import Any

from seasoned.agents.actor import run_actor
from seasoned.envs import get_env
from seasoned.models import Budget, Gateway, Ledger

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_checker_and_tools.py"


def tools_env() -> tuple[Any, list]:
    """The tools example's tools as an environment, and its task (the example's own definitions)."""
    from seasoned.graphs.toolbox import Toolbox

    example = runpy.run_path(str(EXAMPLE), run_name="action_parse")  # defines, does not run, the example
    toolbox = Toolbox([example["price"], example["multiply"]])
    return toolbox, [toolbox.task(example["TASK"], example["SYSTEM_PROMPT"])]


def environment(name: str, episodes: int) -> tuple[Any, list]:
    if name == "tools":
        env, tasks = tools_env()
        return env, tasks * episodes
    env = get_env(name)
    return env, env.tasks(n=episodes)


async def measure(name: str, mode: str, model: str, episodes: int, max_steps: int, max_tokens: int,
                  tokens_per_episode: int) -> dict:
    env, tasks = environment(name, episodes)
    gateway = Gateway(model, ledger=Ledger())
    turns: list[dict] = []
    passed, started = 0, time.perf_counter()
    try:
        for task in tasks:
            attempt = await run_actor(env, task, gateway, max_steps=max_steps, max_tokens=max_tokens,
                                      structured=mode == "json", budget=Budget(max_tokens=tokens_per_episode),
                                      on_turn=turns.append)
            passed += attempt.passed
    finally:
        closer = getattr(env, "aclose", None)
        await closer() if closer is not None else env.close()
    parsed = sum(t["action"] is not None for t in turns)
    return {"env": name, "mode": mode, "episodes": len(tasks), "turns": len(turns), "parsed": parsed,
            "rate": parsed / len(turns) if turns else 0.0, "passed": passed,
            "tokens": gateway.ledger.totals().tokens, "seconds": round(time.perf_counter() - started, 1),
            "unparsed": [t["error"] for t in turns if t["action"] is None][:3]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="tools,swe,miniwob")
    parser.add_argument("--modes", default="json,text")
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens per reply")
    parser.add_argument("--tokens-per-episode", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(f"model {args.model} · {args.episodes} episode(s) per env · at most {args.max_steps} turns each")
    print(f"{'env':<8} {'mode':<5} {'episodes':>8} {'turns':>6} {'parsed':>7} {'rate':>6} {'passed':>7} "
          f"{'tokens':>8} {'seconds':>8}")
    for name in args.envs.split(","):
        for mode in args.modes.split(","):
            row = asyncio.run(measure(name, mode, args.model, args.episodes, args.max_steps, args.max_tokens,
                                      args.tokens_per_episode))
            print(f"{row['env']:<8} {row['mode']:<5} {row['episodes']:>8} {row['turns']:>6} {row['parsed']:>7} "
                  f"{row['rate']:>6.0%} {row['passed']:>7} {row['tokens']:>8} {row['seconds']:>8}", flush=True)
            for why in row["unparsed"]:
                print(f"    unparsed: {' '.join(str(why).split())[:150]}")


if __name__ == "__main__":
    main()
