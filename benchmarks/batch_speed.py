"""Parallel samples of a local model: decoded as one batch vs one after another, in one run (issue 24, item 1).

    python -m seasoned.benchmarks.batch_speed [--model local/smollm2-135m] [--samples 8] [--tokens 64] [--rounds 2]

For a short prompt and a long one (a system message with worked examples, as memory writes them), each round
times three arms on the same prompt and seeds, each starting with no prompt cached: one sample; ``--samples``
samples awaited one after another (the later ones reuse the first one's prompt, as they would in use); and
the same samples started together (``Gateway.asample``), which the local provider decodes as one batch with
the prompt decoded once. Seeded samples are the same in both arms (checked), so both do the same tokens.
Prints wall times, their ratio to one sample (target for the batch: <= 2.5x at 8 samples), tokens/s and
the process's CPU seconds per arm.
The machine's load matters: compare the ratios of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from seasoned.models import Gateway, Ledger, local

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
    return [{"role": "system", "content": "You solve additions step by step. Worked examples:\n\n" + EXAMPLES},
            {"role": "user", "content": f"Question: What is {38 + i} + {47 + 2 * i}?"}]


async def one_round(gateway: Gateway, messages: list[dict], n: int, tokens: int, seed: int) -> dict:
    """The three arms on the same prompt and seeds, each starting with no prompt cached (the later calls of
    the one-after-another arm reuse the first one's prompt, as they would in use)."""
    engine = local.load(gateway.model.removeprefix("local/")).engine(None)
    settings = {"max_tokens": tokens, "temperature": 1.0}
    timings, cpu, replies = {}, {}, {}
    for arm in ("one", "sequential", "batched"):
        engine.forget_prompts()
        started, cpu_started = time.perf_counter(), time.process_time()
        if arm == "one":
            replies[arm] = [await gateway.acomplete(messages, seed=seed, **settings)]
        elif arm == "sequential":
            replies[arm] = [await gateway.acomplete(messages, seed=seed + i, **settings) for i in range(n)]
        else:
            replies[arm] = await gateway.asample(messages, n, seed=seed, **settings)
        timings[arm], cpu[f"{arm}_cpu"] = time.perf_counter() - started, time.process_time() - cpu_started
    return {**timings, **cpu, **{f"{arm}_tokens": sum(c.completion_tokens for c in found) for arm, found in replies.items()},
            "same_samples": sorted(c.text for c in replies["sequential"]) == sorted(c.text for c in replies["batched"]),
            "prompt_tokens": replies["one"][0].prompt_tokens}


async def measure(model: str, n: int, tokens: int, rounds: int) -> dict[str, dict]:
    gateway = Gateway(model, ledger=Ledger(), max_concurrency=max(16, n))
    await gateway.acomplete("Say yes.", max_tokens=2)  # load the model
    results = {}
    for label, prompt in (("short prompt", short_prompt), ("long prompt", long_prompt)):
        runs = [await one_round(gateway, prompt(r), n, tokens, seed=100 * r) for r in range(rounds)]
        results[label] = {key: sum(run[key] for run in runs) for key in runs[0]}
        results[label]["prompt_tokens"] = runs[0]["prompt_tokens"]
        results[label]["same_samples"] = all(run["same_samples"] for run in runs)
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
              f"  ({r['batched_tokens'] / r['batched']:.1f} tok/s; target <= 2.5x: "
              f"{'met' if r['batched'] / r['one'] <= 2.5 else 'NOT met'})")
        print(f"  CPU seconds: one {r['one_cpu']:.1f}, one after another {r['sequential_cpu']:.1f}, "
              f"batch {r['batched_cpu']:.1f} (a batch saves wall time only where decoding is not compute-bound)")
        print(f"  batch speed-up over one after another: {r['sequential'] / r['batched']:.2f}x "
              f"({r['sequential_tokens']} vs {r['batched_tokens']} tokens; same samples: {r['same_samples']})")


if __name__ == "__main__":
    main()
