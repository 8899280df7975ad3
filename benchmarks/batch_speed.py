"""Parallel samples of a local model: decoded as one batch vs one after another, in one run (issue 24, item 1).

    python -m seasoned.benchmarks.batch_speed [--model local/smollm2-135m] [--samples 8] [--tokens 64] [--rounds 2]

For a short prompt and a long one (a system message with worked examples, as memory writes them), each round
times, each on a prompt not decoded before: one sample; ``--samples`` samples awaited one after another (the
later ones reuse the first one's prompt cache); and ``--samples`` samples started together
(``Gateway.asample``), which the local provider decodes as one batch with the prompt decoded once. Prints
wall times, their ratio to one sample (target for the batch: <= 2.5x at 8 samples) and tokens per second.
That a batched sample equals the same sample run alone is a test (tests/test_models_local_batch.py).
The machine's load matters: compare the ratios of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from seasoned.models import Gateway, Ledger

TOPICS = ["a lighthouse keeper and a storm", "a baker who loses her recipe", "a fox that learns to swim",
          "a train that never arrives", "two robots playing chess", "a city under the sea", "a lost umbrella",
          "the last day of summer", "a clock that runs backwards", "a painter who cannot see blue"]
EXAMPLES = "\n\n".join(
    f"Question: What is {a} + {b}?\nWork: {a} + {b} = {a + b}.\nAnswer: {a + b}"
    for a, b in [(12, 30), (45, 17), (8, 91), (33, 33), (70, 5), (26, 48), (19, 64), (52, 29), (11, 77), (64, 18)]
)


def short_prompt(i: int) -> list[dict]:
    return [{"role": "user", "content": f"Write a story about {TOPICS[i % len(TOPICS)]}."}]


def long_prompt(i: int) -> list[dict]:
    """Worked examples behind a session number (so no arm reuses the prompt cache of another), then a question."""
    intro = f"Session {i}. You solve additions step by step. Worked examples:\n\n"
    return [{"role": "system", "content": intro + EXAMPLES},
            {"role": "user", "content": f"Question: What is {38 + i} + {47 + 2 * i}?"}]


async def one_round(gateway: Gateway, prompt, n: int, tokens: int, first: int) -> dict:
    """Each arm gets a prompt no earlier call decoded: no arm is helped by the prompt cache of another."""
    settings = {"max_tokens": tokens, "temperature": 1.0}
    started = time.perf_counter()
    one = await gateway.acomplete(prompt(first), seed=first, **settings)
    single = time.perf_counter() - started
    started = time.perf_counter()
    sequential = [await gateway.acomplete(prompt(first + 1), seed=first + i, **settings) for i in range(n)]
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    together = await gateway.asample(prompt(first + 2), n, seed=first, **settings)
    batched = time.perf_counter() - started
    return {"one": single, "one_tokens": one.completion_tokens, "sequential": one_by_one, "batched": batched,
            "sequential_tokens": sum(c.completion_tokens for c in sequential),
            "tokens": sum(c.completion_tokens for c in together), "prompt_tokens": one.prompt_tokens}


async def measure(model: str, n: int, tokens: int, rounds: int) -> dict[str, dict]:
    gateway = Gateway(model, ledger=Ledger(), max_concurrency=max(16, n))
    await gateway.acomplete("Say yes.", max_tokens=2)  # load the model
    results = {}
    for label, prompt in (("short prompt", short_prompt), ("long prompt", long_prompt)):
        runs = [await one_round(gateway, prompt, n, tokens, first=3 * r) for r in range(rounds)]
        results[label] = {key: sum(run[key] for run in runs) for key in runs[0]}
        results[label]["prompt_tokens"] = runs[0]["prompt_tokens"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    results = asyncio.run(measure(args.model, args.samples, args.tokens, args.rounds))
    n = args.samples
    print(f"{args.model}: {n} samples of up to {args.tokens} tokens, {args.rounds} rounds (wall times summed)")
    for label, r in results.items():
        print(f"{label} ({r['prompt_tokens']} prompt tokens):")
        print(f"  one sample:          {r['one']:6.1f} s  ({r['one_tokens'] / r['one']:.1f} tok/s)")
        print(f"  {n} one after another: {r['sequential']:6.1f} s  = {r['sequential'] / r['one']:.2f}x one"
              f"  ({r['sequential_tokens'] / r['sequential']:.1f} tok/s)")
        print(f"  {n} as one batch:      {r['batched']:6.1f} s  = {r['batched'] / r['one']:.2f}x one"
              f"  ({r['tokens'] / r['batched']:.1f} tok/s; target <= 2.5x: "
              f"{'met' if r['batched'] / r['one'] <= 2.5 else 'NOT met'})")
        print(f"  batch speed-up over one after another: {r['sequential'] / r['batched']:.2f}x "
              f"({r['sequential_tokens']} vs {r['tokens']} tokens)")


if __name__ == "__main__":
    main()
