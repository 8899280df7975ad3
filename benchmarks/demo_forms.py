"""Which demonstrations lift a model: how many, and in which form (not a test).

    python -m seasoned.benchmarks.demo_forms [--questions 80] [--model local/smollm2-135m]
    python -m seasoned.benchmarks.demo_forms --selection [--questions 60] [--pool 40]

Two-digit additions, one sample each (seeded, temperature 0.8), with k verified demonstrations given as
earlier chat turns exactly as the solver builds them (``solver.build_messages``). Each arm sees the same
questions, seeds and demonstration questions; only the form or the number of demonstrations changes.
The figures behind ``MAX_DEMOS`` (graphs/context.py) and the compaction rule (agents/curator.py).

``--selection``: *which* demonstrations, from a memory of ``--pool`` verified additions (in the form that
shows its work), on the environment's own prompts and check: the two fixed hand-written ones of the static
arm (``benchmarks/experience.py``), the two the context builder retrieves (``graphs/context.py``), and
two drawn at random from the pool. It also counts *copies*: wrong answers equal to a shown demonstration's
answer (a model copying a near-duplicate).
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


async def selection(model: str, n: int, pool_size: int, seed: int = 5303, only: list[str] | None = None) -> None:
    """Fixed vs retrieved vs random demonstrations, on the same questions and sample seeds."""
    import tempfile

    from seasoned.envs import get_env
    from seasoned.graphs.context import ContextBuilder, demo_key
    from seasoned.memory import MemoryBank
    from seasoned.models import Budget

    from .experience import static_shots

    env = get_env("addition")
    questions = env.tasks(n=n, seed=seed, difficulty=2)
    pool = env.tasks(n=pool_size, seed=seed + 1, difficulty=2)
    gateway = Gateway(model, ledger=Ledger())
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        bank = MemoryBank.open(f"sqlite:///{tmp}/m.db", namespace="forms", chroma_path=f"{tmp}/chroma")
        for task in pool:
            a, b = task.metadata["a"], task.metadata["b"]
            reply = FORMS["shows its work"](a, b)
            bank.put(demo_key(task.prompt), {"kind": "demonstration", "title": task.prompt[:300], "content": reply,
                                             "verified": True, "data": {"task": task.prompt, "reply": reply}},
                     namespace="forms")
        builder = ContextBuilder(bank, "forms", model, "addition", channel="demos")
        def nearest(task) -> list[dict]:
            hits = bank.retrieve(task.prompt, k=2, kinds=["demonstration"], namespace="forms", track=False)
            return [{"task": h.item.data["task"], "reply": h.item.data["reply"]} for h in reversed(hits)]

        arms = {"fixed (static 2-shot)": lambda task: static_shots("addition"),
                "nearest (similarity only)": nearest,
                "retrieved (context builder)": lambda task: builder._build(task.prompt, Budget(), 1, 64).demos,
                "random from memory": lambda task: [
                    {"task": t.prompt, "reply": FORMS["shows its work"](t.metadata["a"], t.metadata["b"])}
                    for t in rng.sample(pool, 2)]}
        print(f"{model}, {n} two-digit additions (env prompts and check), one sample each, pool of {pool_size}")
        for name, pick in arms.items():
            if only and not any(word in name for word in only):
                continue
            solved = copies = tokens = 0
            for index, task in enumerate(questions):
                demos = pick(task)
                messages = solver.build_messages(task.prompt, demonstrations=demos, answer_format=None)
                reply = await gateway.acomplete(messages, max_tokens=64, seed=1000 + index, temperature=0.8)
                verdict = await env.verify(task, reply.text)
                solved += verdict.passed
                shown = {d["reply"].rsplit("Answer:", 1)[-1].strip() for d in demos}
                copies += (not verdict.passed) and env.extract_answer(reply.text) in shown
                tokens += reply.total_tokens
            low, high = wilson(solved, n)
            print(f"  {name:>28}: {solved}/{n} ({low:.0%}-{high:.0%}), {copies} wrong answers copied from a "
                  f"shown demonstration, {tokens / n:.0f} tok/sample", flush=True)
        bank.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--selection", action="store_true", help="fixed vs retrieved vs random demonstrations")
    parser.add_argument("--pool", type=int, default=40, help="--selection: verified additions in memory")
    parser.add_argument("--arms", nargs="*", help="--selection: only the arms whose name has one of these words")
    args = parser.parse_args(argv)
    if args.selection:
        asyncio.run(selection(args.model, args.questions, args.pool, only=args.arms))
    else:
        asyncio.run(run(args.model, args.questions))


if __name__ == "__main__":
    main()
