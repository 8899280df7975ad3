"""Time per call of every parser and role on generated adversarial model output (issue 14's 50 ms target).

    python -m seasoned.benchmarks.parser_fuzz [--count 10000] [--seed 14]

The outputs and targets are those of ``tests/security/adversarial.py`` (JSON nested up to 100,000 deep,
numbers that overflow a float, 60,000-character runs that made the old regexes quadratic, tool calls of
any shape). Prints, per target, the calls, p50, p99 and max milliseconds, and anything that escaped
other than the target's typed parse error.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="generated outputs (each goes to every target)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--big", type=float, default=0.01,
                        help="share of 60,000-character runs (100,000-deep nesting: 5x that)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(TESTS))
    from security.adversarial import fuzz  # the test suite's generator, so both measure the same inputs

    times: dict[str, list[float]] = defaultdict(list)
    started = time.perf_counter()
    report = fuzz(args.count, args.seed, big=args.big, on_call=lambda name, seconds: times[name].append(seconds))
    wall = time.perf_counter() - started
    print(f"{args.count} outputs, {report.calls} calls in {wall:.1f} s (seed {args.seed}, big {args.big})")
    print(f"{'target':38} {'calls':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in sorted(times.items(), key=lambda kv: -max(kv[1])):
        ordered = sorted(values)
        p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"{name:38} {len(values):>7} {p50 * 1000:>8.3f} {p99 * 1000:>8.3f} {ordered[-1] * 1000:>8.2f}")
    slowest = max(report.slowest.items(), key=lambda kv: kv[1])
    print(f"max per call: {slowest[1] * 1000:.1f} ms ({slowest[0]}); target 50 ms: "
          f"{'met' if slowest[1] <= 0.05 else 'NOT met'}")
    print(f"escaped (not the typed parse error): {len(report.escaped)}")
    for name, error, head in report.escaped[:10]:
        print(f"  {name}: {error} <- {head!r}")
    return 1 if report.escaped else 0


if __name__ == "__main__":
    sys.exit(main())
