"""Load on `seasoned serve`: N concurrent clients for a bounded time against a scripted model with a fixed
delay, then a check that the server still answers. The server runs in a child process on 127.0.0.1 (its
own interpreter, so the clients do not share its event loop) and is stopped at the end.

    python -m seasoned.benchmarks.server_load --clients 64 --seconds 20 --delay 2.0
    python -m seasoned.benchmarks.server_load --replicas 1,2 --db postgresql+psycopg://USER@HOST/DB

``--replicas 1,2`` runs the same load on one replica and then on two (each its own process, sharing the
database given by ``--db``, PostgreSQL for replicas), the client sending requests round robin, and prints
the figures side by side. Prints requests/s, latency p50/p95/p99/max and errors; goal: 0 errors and
p95 < 2x the provider delay.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

MODEL = "scripted/load"


def child(port: int, delay: float, memory: bool, checkpoint: bool, clients: int) -> None:
    """The server process: a scripted model that answers after ``delay`` seconds."""
    from seasoned.models import scripted
    from seasoned.server import ServerSettings, create_app

    scripted.register("load", fn=lambda messages, params: "Adding them gives the sum.\nAnswer: 42", delay=delay)
    from seasoned.server.runner import StoppingServer, uvicorn_config

    settings = ServerSettings(model=MODEL, strategy="single", memory=memory, checkpoint=checkpoint,
                              max_concurrent_per_key=max(64, clients), gateway_concurrency=max(64, clients))
    StoppingServer(uvicorn_config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")).run()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_ready(url: str, timeout: float, process: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the server exited early (code {process.returncode})")
            try:
                if (await client.get("/v1/models")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not come up in time")


def body(index: int) -> dict:
    return {"model": f"single:{MODEL}", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"Request {index}: what is {index} + 42 - {index}?"}]}


async def closed_loop(request, clients: int, seconds: float, latencies: list[float] | None,
                      errors: Counter, failure: type[BaseException] = Exception) -> float:
    """``clients`` workers each send ``request(i)`` back to back until ``seconds`` have passed. A request
    returns "" when it succeeded (its latency is kept when ``latencies`` is given) or an error label;
    raising ``failure`` counts as an error too. Returns the elapsed seconds."""
    counter = iter(range(10**9))
    started = time.monotonic()
    stop_at = started + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            began = time.monotonic()
            try:
                problem = await request(next(counter))
            except failure as exc:
                problem = type(exc).__name__
            if problem:
                errors[problem] += 1
            elif latencies is not None:
                latencies.append(time.monotonic() - began)

    await asyncio.gather(*[worker() for _ in range(clients)])
    return time.monotonic() - started


async def load(urls: list[str], clients: int, seconds: float, timeout: float) -> tuple[list[float], Counter, float]:
    """The load, request ``i`` sent to ``urls[i % len(urls)]`` (round robin over replicas)."""
    import httpx

    latencies: list[float] = []
    errors: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def request(i: int) -> str:
            response = await client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body(i))
            ok = response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
            return "" if ok else f"HTTP {response.status_code}"

        elapsed = await closed_loop(request, clients, seconds, latencies, errors, httpx.HTTPError)
    return latencies, errors, elapsed


async def still_answers(url: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        models = await client.get("/v1/models")
        reply = await client.post("/v1/chat/completions", json=body(-1))
    usage = reply.json().get("usage", {}) if reply.status_code == 200 else {}
    return f"GET /v1/models {models.status_code}, completion {reply.status_code} ({usage.get('total_tokens')} tokens)"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def direct(args: argparse.Namespace) -> int:
    """The same load on ``Agent.arun`` in this process, without HTTP: what the agent itself costs."""
    home = tempfile.mkdtemp(prefix="seasoned-load-")
    os.environ["SEASONED_HOME"] = home
    from seasoned.graphs import Agent
    from seasoned.models import Gateway, Ledger, scripted

    scripted.register("load", fn=lambda messages, params: "Adding them gives the sum.\nAnswer: 42", delay=args.delay)
    agent = Agent(gateway=Gateway(MODEL, ledger=Ledger(), max_concurrency=max(64, args.clients)),
                  strategy="single", db_url=f"sqlite:///{home}/seasoned.db", checkpoint=not args.no_checkpoint)
    latencies: list[float] = []
    errors: Counter = Counter()

    async def request(i: int) -> str:
        result = await agent.arun(body(i)["messages"][0]["content"], budget={"max_tokens": 8000})
        return "" if result.text else "empty answer"

    await closed_loop(request, min(4, args.clients), min(2.0, args.seconds), None, errors)  # warm-up
    elapsed = await closed_loop(request, args.clients, args.seconds, latencies, errors)
    report(args, latencies, errors, elapsed, "(direct Agent.arun, no HTTP)", "-")
    return 0


def report(args: argparse.Namespace, latencies: list[float], errors: Counter, elapsed: float, mode: str,
           after: str) -> bool:
    done = len(latencies)
    p95 = percentile(latencies, 95)
    print(f"server_load {mode}: {args.clients} clients, {args.seconds:g} s, provider delay {args.delay:g} s, "
          f"strategy single, memory {'on' if args.memory else 'off'}, "
          f"checkpoint {'off' if args.no_checkpoint else 'on'}")
    print(f"  requests ok   {done}  ({done / elapsed:.1f} req/s over {elapsed:.1f} s)")
    if latencies:
        print(f"  latency       p50 {percentile(latencies, 50):.3f} s  p95 {p95:.3f} s  p99 "
              f"{percentile(latencies, 99):.3f} s  max {max(latencies):.3f} s  mean {statistics.mean(latencies):.3f} s")
    print(f"  errors        {sum(errors.values())}" + (f"  {dict(errors)}" if errors else ""))
    print(f"  afterwards    {after}")
    goal = not errors and done > 0 and p95 < 2 * args.delay
    print(f"  goal (0 errors, p95 < {2 * args.delay:g} s): {'met' if goal else 'NOT met'}")
    return goal


def start_child(args: argparse.Namespace, port: int) -> subprocess.Popen:
    home = tempfile.mkdtemp(prefix="seasoned-load-")
    env = {**os.environ, "SEASONED_HOME": home, "SEASONED_DB_URL": args.db or f"sqlite:///{home}/seasoned.db"}
    command = [sys.executable, "-m", "seasoned.benchmarks.server_load", "--child", str(port),
               "--delay", str(args.delay), "--clients", str(args.clients)]
    command += ["--memory"] if args.memory else []
    command += ["--no-checkpoint"] if args.no_checkpoint else []
    return subprocess.Popen(command, env=env)


def stop_child(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def main_async(args: argparse.Namespace, urls: list[str], processes: list[subprocess.Popen]) -> dict:
    for url, process in zip(urls, processes, strict=True):
        await wait_ready(url, 180, process)
    await load(urls, min(4, args.clients), min(2.0, args.seconds), args.timeout)  # warm-up
    latencies, errors, elapsed = await load(urls, args.clients, args.seconds, args.timeout)
    after = await still_answers(urls[-1])
    mode = f"(HTTP, {len(urls)} replica{'s' if len(urls) > 1 else ''} in child processes)"
    met = report(args, latencies, errors, elapsed, mode, after)
    return {"replicas": len(urls), "ok": len(latencies), "rps": len(latencies) / elapsed, "met": met,
            "p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "errors": sum(errors.values())}


def run_replicas(args: argparse.Namespace, count: int) -> dict:
    ports = [free_port() for _ in range(count)]
    processes = [start_child(args, port) for port in ports]
    try:
        return asyncio.run(main_async(args, [f"http://127.0.0.1:{p}" for p in ports], processes))
    finally:
        for process in processes:
            stop_child(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--delay", type=float, default=2.0, help="the scripted provider's delay per call")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request")
    parser.add_argument("--memory", action="store_true", help="retrieve from the memory bank on every request")
    parser.add_argument("--no-checkpoint", action="store_true", help="run the server without SQLite checkpoints")
    parser.add_argument("--direct", action="store_true",
                        help="baseline: the same load on Agent.arun in-process, without the server")
    parser.add_argument("--replicas", default="1", help="replica counts to compare, e.g. 1,2 (needs --db for more "
                        "than one: they share it)")
    parser.add_argument("--db", help="the database URL every replica uses (PostgreSQL for replicas); default: "
                        "a SQLite file per replica")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.delay, args.memory, not args.no_checkpoint, args.clients)
        return 0
    if args.direct:
        return asyncio.run(direct(args))
    counts = [int(n) for n in args.replicas.split(",")]
    if max(counts) > 1 and not args.db:
        parser.error("--replicas above 1 needs --db (a database they share, e.g. PostgreSQL)")
    results = [run_replicas(args, count) for count in counts]
    if len(results) > 1:
        print(f"side by side ({args.clients} clients, provider delay {args.delay:g} s):")
        for r in results:
            print(f"  {r['replicas']} replica(s): {r['ok']} ok, {r['rps']:.1f} req/s, p50 {r['p50']:.3f} s, "
                  f"p95 {r['p95']:.3f} s, {r['errors']} errors")
    return 0 if all(r["met"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
