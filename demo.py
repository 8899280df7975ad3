"""The README's main job (``make demo`` / ``seasoned demo``).

Two-digit additions on the embedded model: samples race in parallel through the gateway and the
race stops as soon as one answer passes the checker (first-finish), so easy questions cost one or
two samples and hard ones spend more. Prints per-question verdicts and spend, then the totals.
"""

from __future__ import annotations

import random
import re
import time

from rich.console import Console
from rich.table import Table

from seasoned.models import Budget, Gateway, call_tags

PROMPT = "What is {a} + {b}? Reply with the number only."


def _last_number(text: str) -> int | None:
    numbers = re.findall(r"-?\d+", text.replace(",", ""))
    return int(numbers[-1]) if numbers else None


async def _solve(gateway: Gateway, a: int, b: int, samples: int, seed: int, budget: Budget) -> dict:
    drawn, answer = 0, None
    async with gateway.samples(PROMPT.format(a=a, b=b), samples, seed=seed, max_tokens=16, temperature=0.8,
                               budget=budget) as stream:
        async for reply in stream:
            if isinstance(reply, Exception):
                continue
            drawn += 1
            if _last_number(reply.text) == a + b:
                answer = reply.text.strip()
                break
    return {"drawn": drawn, "answer": answer}


def run(model: str | None = None, samples: int = 8, questions: int = 5, seed: int = 0,
        console: Console | None = None) -> dict:
    """Run the demo and return its totals."""
    from seasoned.models.sync import run_sync

    console = console or Console()
    gateway = Gateway(model, max_concurrency=samples)
    rng = random.Random(seed)
    table = Table(title=f"first-finish sampling on {gateway.model} (up to {samples} samples each)")
    for column in ("question", "verified", "samples used", "tokens", "seconds"):
        table.add_column(column)
    solved = 0
    started = time.perf_counter()
    console.print(f"[bold]seasoned demo[/bold]: {questions} additions, model {gateway.model}")
    for index in range(questions):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        budget = Budget(max_tokens=samples * 80, name=f"question {index + 1}")
        run_id = f"demo-{seed}-{index}"
        t0 = time.perf_counter()
        with call_tags(run_id=run_id, role="solver"):
            result = run_sync(_solve(gateway, a, b, samples, seed + index * samples, budget))
        spent = gateway.ledger.totals(run_id=run_id)
        solved += result["answer"] is not None
        table.add_row(f"{a} + {b}", "yes" if result["answer"] else "no", str(result["drawn"]),
                      str(spent.total_tokens), f"{time.perf_counter() - t0:.1f}")
        console.print(f"  {a} + {b}: {'verified ' + repr(result['answer']) if result['answer'] else 'not solved'}"
                      f" after {result['drawn']} sample(s), {spent.total_tokens} tokens")
    console.print(table)
    totals = gateway.ledger.totals()
    summary = {"questions": questions, "solved": solved, "calls": totals.calls, "tokens": totals.total_tokens,
               "seconds": round(time.perf_counter() - started, 1)}
    console.print(f"solved {solved}/{questions} with {totals.calls} model calls, {totals.total_tokens} tokens "
                  f"({totals.total_tokens / max(solved, 1):.0f} tokens per solved question), "
                  f"{summary['seconds']}s")
    return summary
