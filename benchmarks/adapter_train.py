"""Target (b) of issue 21: a LoRA trained on the model's own verified replies, zero-shot after (not a test).

    python -m seasoned.benchmarks.adapter_train [--seeds 5923 8461] [--questions 40] [--samples 8] [--eval 40]

Per question seed, on the real embedded model and the ``addition`` environment (two-digit numbers):
1. sample the model ``--samples`` times on ``--questions`` questions (temperature 0.8, seeded), zero-shot,
   with the messages the solver sends for an environment's task; keep the replies the environment's check
   accepts (at most ``--max-items``, spread over the questions);
2. store them as ``demonstration`` items of a fresh bank, as the curator does (with the messages the model
   was given), and train through the product's path: ``seasoned-admin train`` in a child process, as the
   background trigger runs it (held-out check included), in a private SEASONED_HOME;
3. compare zero-shot per-sample success on ``--eval`` new questions (question seed + 1), one sample each at
   temperature 0.8 with the same seeds, base model vs base + adapter, both through llama.cpp with the same
   prompt (the local provider's chat template): counts, Wilson 95% intervals, tokens per answer.
Training seconds, the child's peak RSS and the machine's load average are printed: wall times are noisy on
a shared machine. Question seeds 5923/5924 and 8461/8462 appear nowhere else in the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seasoned.agents import solver
from seasoned.envs.addition import AdditionEnv
from seasoned.graphs.context import demonstration_item
from seasoned.memory import MemoryBank
from seasoned.models import Gateway, Ledger
from seasoned.models.local import load, resolve_model_path

from .stats import wilson

SCOPE = "addition"
NAMESPACE = "adapter-bench"


def messages_for(task) -> list[dict]:
    """What the solver sends for an environment's task (its prompt says how to answer)."""
    return solver.build_messages(task.prompt, answer_format=None)


async def verified_replies(gateway: Gateway, env: AdditionEnv, tasks, samples: int, seed: int,
                           max_tokens: int) -> list[list[str]]:
    """Per question, the distinct sampled replies the environment's check accepts."""
    found = []
    for index, task in enumerate(tasks):
        accepted: list[str] = []
        async with gateway.samples(messages_for(task), samples, seed=seed * 1000 + index * samples,
                                   max_tokens=max_tokens, temperature=0.8) as stream:
            async for completion in stream:
                text = completion.text.strip()
                if text and text not in accepted and (await env.verify(task, text)).passed:
                    accepted.append(text)
        found.append(accepted)
    return found


def spread(per_question: list[list[str]], limit: int) -> list[tuple[int, str]]:
    """At most ``limit`` (question index, reply), one round over the questions at a time."""
    chosen: list[tuple[int, str]] = []
    depth = 0
    while len(chosen) < limit and any(len(r) > depth for r in per_question):
        chosen += [(i, r[depth]) for i, r in enumerate(per_question) if len(r) > depth][: limit - len(chosen)]
        depth += 1
    return chosen


def store_demonstrations(bank: MemoryBank, env: AdditionEnv, tasks, chosen: list[tuple[int, str]],
                         model: str) -> None:
    """The verified replies as the curator stores them (one item per reply: a question's further replies get
    a numbered key, as the curator would keep only the newest)."""
    from seasoned.agents.curator import compact_reply

    counts: dict[int, int] = {}
    for index, text in chosen:
        task = tasks[index]
        answer = task.metadata["answer"]
        item = demonstration_item(task=task.prompt, reply=compact_reply(text, answer, task.prompt), scope=SCOPE,
                                  model=model, run_id=None, checker=f"env:{env.name}", answer=answer, raw_reply=text)
        item["data"]["messages"] = messages_for(task)
        counts[index] = counts.get(index, 0) + 1
        key = item["key"] if counts[index] == 1 else f"{item['key']}#{counts[index]}"
        bank.put(key, {**item, "key": key}, namespace=NAMESPACE, actor="curator", reason="verified demonstration")


def train(home: Path, url: str, model: str, seed: int, reply: str, max_seconds: float | None) -> tuple[dict, float]:
    """``seasoned-admin train`` in a child process (the background trigger's path): its JSON and wall time."""
    env = {**os.environ, "SEASONED_HOME": str(home), "SEASONED_DB_URL": url}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "seasoned.memory", "train", "--namespace", NAMESPACE,
                           "--model", model, "--scope", SCOPE, "--seed", str(seed), "--reply", reply, "--json",
                           *(["--max-seconds", str(max_seconds)] if max_seconds else [])],
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    for line in done.stderr.strip().splitlines()[-3:]:
        print(f"    | {line}")
    if done.returncode != 0:
        raise SystemExit(f"training failed (exit {done.returncode})")
    return json.loads(done.stdout), seconds


def zero_shot(model: str, adapter: Path | None, tasks, env: AdditionEnv, seed: int, max_tokens: int,
              threads: int) -> tuple[int, int]:
    """(solved, completion tokens): one sample per question at temperature 0.8, through llama.cpp with the
    local provider's prompt formatting, with or without the adapter (the same seeds for both)."""
    from seasoned.models.llama_cpu import open_llama

    name = model.removeprefix("local/")
    loaded = load(name)  # the provider's formatter and tokenizer: the prompt is exactly what it would send
    llm = open_llama(resolve_model_path(name), lora_path=str(adapter) if adapter else None, n_ctx=2048,
                n_threads=threads, verbose=False)
    eos = llm._model.token_get_text(llm.token_eos())
    solved = tokens = 0
    try:
        for index, task in enumerate(tasks):
            llm.reset()
            out = llm.create_completion(loaded.prompt_tokens(messages_for(task)), max_tokens=max_tokens,
                                        temperature=0.8, top_p=0.95, seed=seed * 1000 + index, stop=[eos])
            text = out["choices"][0]["text"]
            tokens += int(out["usage"]["completion_tokens"])
            solved += asyncio.run(env.verify(task, text)).passed
    finally:
        llm.close()
    return solved, tokens


def one_seed(args: argparse.Namespace, seed: int) -> dict:
    env = AdditionEnv()
    train_tasks = env.tasks(n=args.questions, seed=seed, difficulty=2)
    eval_tasks = env.tasks(n=args.eval, seed=seed + 1, difficulty=2)
    with tempfile.TemporaryDirectory(prefix="adapter-bench-") as folder:
        home = Path(folder)
        os.environ["SEASONED_HOME"] = str(home)
        url = f"sqlite:///{home / 'memory.db'}"
        started = time.monotonic()
        saved = Path(args.replies_dir) / f"replies-{seed}-{args.questions}x{args.samples}.json" \
            if args.replies_dir else None
        if saved is not None and saved.is_file():  # the same seed's sampling, kept from an earlier run
            per_question = json.loads(saved.read_text())
        else:
            per_question = asyncio.run(verified_replies(Gateway(args.model, ledger=Ledger()), env, train_tasks,
                                                        args.samples, seed, args.max_tokens))
            if saved is not None:
                saved.write_text(json.dumps(per_question))
        chosen = spread(per_question, args.max_items)
        print(f"  seed {seed}: {sum(map(len, per_question))} verified replies on "
              f"{sum(bool(r) for r in per_question)}/{len(train_tasks)} questions "
              f"({args.samples} samples each, {time.monotonic() - started:.0f} s); training on {len(chosen)}",
              flush=True)
        with MemoryBank.open(url=url, namespace=NAMESPACE) as bank:
            store_demonstrations(bank, env, train_tasks, chosen, args.model)
        load_before = os.getloadavg()[0]
        adapter, wall = train(home, url, args.model, seed, args.reply, args.max_seconds)
        load_after = os.getloadavg()[0]
        check = adapter.get("check") or {}
        fit = check.get("fit") or {}
        print(f"    adapter {adapter['status']}: {wall:.0f} s wall in the child (load {fit.get('load_seconds')} s, "
              f"fit {fit.get('fit_seconds')} s for {fit.get('steps')}/{fit.get('planned_steps')} steps, check "
              f"{fit.get('check_seconds')} s), peak RSS {adapter['peak_rss_mb']:.0f} MB, load average "
              f"{load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores", flush=True)
        print(f"    held-out ({check.get('heldout')}): NLL {check.get('base', {}).get('nll')} -> "
              f"{check.get('adapter', {}).get('nll')}, greedy answers {check.get('base', {}).get('matches')} -> "
              f"{check.get('adapter', {}).get('matches')}, conversion {check.get('conversion')}", flush=True)
        results = {"seed": seed, "train_items": adapter["train_items"], "status": adapter["status"],
                   "train_wall_s": round(wall, 1), "peak_rss_mb": adapter["peak_rss_mb"], "check": check}
        path = Path(adapter["path"]) if adapter.get("path") else None
        for arm, lora in (("base", None), ("adapter", path)):
            solved, tokens = zero_shot(args.model, lora, eval_tasks, env, seed, args.max_tokens, args.threads)
            low, high = wilson(solved, len(eval_tasks))
            results[arm] = {"solved": solved, "of": len(eval_tasks), "tokens_per_answer": round(tokens / len(eval_tasks), 1)}
            print(f"    zero-shot {arm:>7}: {solved}/{len(eval_tasks)} ({low:.0%}-{high:.0%}), "
                  f"{tokens / len(eval_tasks):.1f} tokens per answer", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5923, 8461], help="question seeds")
    parser.add_argument("--questions", type=int, default=40, help="questions sampled for training data")
    parser.add_argument("--samples", type=int, default=8, help="samples per training question")
    parser.add_argument("--max-items", type=int, default=50, help="at most this many verified replies")
    parser.add_argument("--eval", type=int, default=40, help="new questions for the zero-shot comparison")
    parser.add_argument("--max-tokens", type=int, default=128, help="per sample")
    parser.add_argument("--reply", choices=["raw", "compact"], default="raw", help="what the adapter trains on")
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    parser.add_argument("--replies-dir", metavar="DIR", help="keep each seed's verified replies here and reuse "
                        "them on a later run (sampling is the slow part)")
    parser.add_argument("--max-seconds", type=float, help="the training's time cap (default: its setting)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="llama.cpp threads of the zero-shot comparison (1 is faster on an overloaded machine)")
    args = parser.parse_args(argv)
    print(f"{args.model}: LoRA on its own verified replies, addition (two digits); {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    results = [one_seed(args, seed) for seed in args.seeds]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
