"""Gateway overhead and concurrency, measured in one run on the scripted provider.

    python -m seasoned.benchmarks.overhead [--calls 2000]

1. Overhead per call: ``Gateway.acomplete`` (budget reservation, ledger, tags, retries armed) against the
   provider's own handler called directly (what the gateway calls for an in-process provider); p50/p95 of
   each and of the difference. Goal: under 1 ms p50. ``litellm.acompletion`` to the same provider is timed
   too, for reference (what every call cost before the gateway called in-process handlers itself).
2. Concurrency: 32 parallel samples against a provider that waits 200 ms per call, compared with one
   call's time. Goal: under 2x.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from seasoned.models import Budget, Gateway, Ledger, call_tags, providers, scripted

MESSAGES = [{"role": "user", "content": "What is 17 + 25? Reply with the number only."}]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_calls(make_call, calls: int) -> list[float]:
    for _ in range(min(50, calls)):  # warm-up
        await make_call()
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        await make_call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def overhead(calls: int) -> dict:
    litellm = providers.litellm()
    scripted.register("bench", fn=lambda messages, params: "42")
    gateway = Gateway("scripted/bench", ledger=Ledger())
    budget = Budget(max_tokens=10**12)

    async def direct():
        return await providers.acomplete_in_process("scripted/bench", MESSAGES, 16, {}, None)

    async def through_litellm():
        return await litellm.acompletion(model="scripted/bench", messages=MESSAGES, max_tokens=16)

    async def through_gateway():
        with call_tags(run_id="bench", role="solver"):
            return await gateway.acomplete(MESSAGES, max_tokens=16, budget=budget)

    # Interleave rounds so both arms see the same machine load.
    direct_ms: list[float] = []
    gateway_ms: list[float] = []
    litellm_ms: list[float] = []
    rounds = 5
    for _ in range(rounds):
        direct_ms += await time_calls(direct, calls // rounds)
        gateway_ms += await time_calls(through_gateway, calls // rounds)
        litellm_ms += await time_calls(through_litellm, calls // rounds)
    return {
        "litellm_p50_ms": statistics.median(litellm_ms), "litellm_p95_ms": percentile(litellm_ms, 0.95),
        "direct_p50_ms": statistics.median(direct_ms), "direct_p95_ms": percentile(direct_ms, 0.95),
        "gateway_p50_ms": statistics.median(gateway_ms), "gateway_p95_ms": percentile(gateway_ms, 0.95),
        "overhead_p50_ms": statistics.median(gateway_ms) - statistics.median(direct_ms),
        "overhead_p95_ms": percentile(gateway_ms, 0.95) - percentile(direct_ms, 0.95),
        "calls_per_arm": len(direct_ms),
    }


async def concurrency(samples: int = 32, delay: float = 0.2) -> dict:
    scripted.register("slow-bench", fn=lambda messages, params: "42", delay=delay)
    gateway = Gateway("scripted/slow-bench", ledger=Ledger(), max_concurrency=samples)
    await gateway.acomplete(MESSAGES, max_tokens=16)  # warm-up
    started = time.perf_counter()
    await gateway.acomplete(MESSAGES, max_tokens=16)
    one = time.perf_counter() - started
    started = time.perf_counter()
    replies = await gateway.asample(MESSAGES, samples, max_tokens=16)
    many = time.perf_counter() - started
    return {"samples": samples, "provider_delay_s": delay, "one_call_s": one, "parallel_s": many,
            "ratio": many / one, "ok": sum(not isinstance(r, Exception) for r in replies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per arm for the overhead measurement")
    args = parser.parse_args()
    result = asyncio.run(overhead(args.calls))
    print(f"overhead per call over the provider's handler (scripted provider, {result['calls_per_arm']} calls/arm):")
    print(f"  handler p50 {result['direct_p50_ms']:.3f} ms  p95 {result['direct_p95_ms']:.3f} ms")
    print(f"  gateway p50 {result['gateway_p50_ms']:.3f} ms  p95 {result['gateway_p95_ms']:.3f} ms")
    print(f"  overhead p50 {result['overhead_p50_ms']:.3f} ms  p95 {result['overhead_p95_ms']:.3f} ms  "
          f"(goal: p50 < 1 ms: {'met' if result['overhead_p50_ms'] < 1 else 'NOT met'})")
    print(f"  for reference, litellm.acompletion to the same provider: p50 {result['litellm_p50_ms']:.3f} ms  "
          f"p95 {result['litellm_p95_ms']:.3f} ms")
    conc = asyncio.run(concurrency())
    print(f"concurrency: {conc['samples']} samples x {conc['provider_delay_s'] * 1000:.0f} ms provider delay: "
          f"{conc['parallel_s']:.3f} s vs one call {conc['one_call_s']:.3f} s = {conc['ratio']:.2f}x "
          f"({conc['ok']}/{conc['samples']} ok; goal < 2x: {'met' if conc['ratio'] < 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
