"""Which demonstrations lift a model: how many, and in which form (not a test).

    python -m seasoned.benchmarks.demo_forms [--questions 80] [--model local/smollm2-135m]

Two-digit additions, one sample each (seeded, temperature 0.8), with k verified demonstrations given as
earlier chat turns exactly as the solver builds them (``solver.build_messages``). Each arm sees the same
questions, seeds and demonstration questions; only the form or the number of demonstrations changes.
The figures behind ``MAX_DEMOS`` (graphs/context.py) and the compaction rule (agents/curator.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random

from seasoned.agents import solver
from seasoned.models import Gateway, Ledger

from .stats import wilson

FORMS = {
    "shows its work": lambda a, b: f"{a} + {b} = {a + b}\nAnswer: {a + b}",
    "bare answer": lambda a, b: f"Answer: {a + b}",
    "filler line": lambda a, b: f"so it is indeed {a + b}\nAnswer: {a + b}",
    "long steps": lambda a, b: (f"{a} + {b}: tens {a // 10 * 10} + {b // 10 * 10} = {a // 10 * 10 + b // 10 * 10}, "
                                f"ones {a % 10} + {b % 10} = {a % 10 + b % 10}, total {a + b}.\nAnswer: {a + b}"),
}
ARMS = [(0, "shows its work"), (1, "shows its work"), (2, "shows its work"), (4, "shows its work"),
        (2, "bare answer"), (2, "filler line"), (2, "long steps")]


async def arm(gateway: Gateway, questions: list[tuple[int, int]], shown: list[tuple[int, int]], form: str,
              ) -> tuple[int, int]:
    """(solved, tokens) over ``questions`` with ``shown`` as demonstrations in ``form``."""
    solved = tokens = 0
    demos = [{"task": f"What is {a} + {b}?", "reply": FORMS[form](a, b)} for a, b in shown]
    for index, (a, b) in enumerate(questions):
        messages = solver.build_messages(f"What is {a} + {b}?", demonstrations=demos)
        reply = await gateway.acomplete(messages, max_tokens=64, seed=1000 + index, temperature=0.8)
        solved += solver.extract_answer(reply.text) == str(a + b)
        tokens += reply.total_tokens
    return solved, tokens


async def run(model: str, n: int) -> None:
    rng = random.Random(11)
    questions = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(n)]
    pool = [(rng.randint(10, 99), rng.randint(10, 99)) for _ in range(max(k for k, _ in ARMS))]
    gateway = Gateway(model, ledger=Ledger())
    print(f"{model}, {n} two-digit additions, one sample each")
    for k, form in ARMS:
        solved, tokens = await arm(gateway, questions, pool[:k], form)
        low, high = wilson(solved, n)
        print(f"  {k} demo(s), {form:>14}: {solved}/{n} ({low:.0%}-{high:.0%}), {tokens / n:.0f} tok/sample, "
              f"{tokens / max(solved, 1):.0f} tok/solved", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--model", default="local/smollm2-135m")
    args = parser.parse_args(argv)
    asyncio.run(run(args.model, args.questions))


if __name__ == "__main__":
    main()
