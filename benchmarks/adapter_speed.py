"""Decoding speed of a local model with and without a LoRA adapter, in one run (issue 21, "Serving").

    python -m seasoned.benchmarks.adapter_speed [--model local/smollm2-135m] [--rank 8] [--tokens 64] [--rounds 3]

Writes a random LoRA of the given rank on every linear layer of the model (what training produces: rank 8,
all linear layers), then alternates calls without and with it (same prompt, seeds and ``max_tokens``) and
prints completion tokens per second of each arm and their ratio.
The adapter is served by llama.cpp on the quantized base weights (one context per adapter): no merged copy
of the model is written.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from seasoned.models import Gateway, Ledger
from seasoned.models.local import model_digest, resolve_model_path

PROMPT = "Write a long story about a lighthouse keeper and a storm. Use many details."
LINEAR = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def random_adapter(path: Path, model: str, *, rank: int = 8, blocks: int | None = None, scale: float = 0.02,
                   seed: int = 0, base_digest: str | None = None) -> Path:
    """A random LoRA adapter GGUF for ``model`` (local/<name>): rank ``rank`` on every linear layer of the first
    ``blocks`` blocks (all when None), stamped with the model file's digest (or ``base_digest``), as llama.cpp
    reads adapters."""
    import gguf

    base = resolve_model_path(model.removeprefix("local/"))
    reader = gguf.GGUFReader(base)
    architecture = reader.fields["general.architecture"].contents()
    shapes = {t.name: [int(n) for n in t.shape] for t in reader.tensors}  # ggml order: (in, out)
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    writer.add_string("seasoned.base_digest", base_digest or model_digest(base))
    block = 0
    while f"blk.{block}.attn_q.weight" in shapes and (blocks is None or block < blocks):
        for layer in LINEAR:
            name = f"blk.{block}.{layer}.weight"
            if name in shapes:
                n_in, n_out = shapes[name][:2]
                writer.add_tensor(f"{name}.lora_a", (rng.standard_normal((rank, n_in)) * scale).astype(np.float32))
                writer.add_tensor(f"{name}.lora_b", (rng.standard_normal((n_out, rank)) * scale).astype(np.float32))
        block += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def measure(model: str, rank: int, tokens: int, rounds: int) -> dict:
    gateway = Gateway(model, ledger=Ledger())
    with tempfile.TemporaryDirectory() as folder:
        adapter = random_adapter(Path(folder) / "bench-lora.gguf", model, rank=rank)
        for arm in (None, adapter):  # warm-up: load the model and both contexts
            gateway.complete(PROMPT, max_tokens=4, seed=0, adapter=arm)
        spent = {"base": [0, 0.0], "adapter": [0, 0.0]}
        for round_ in range(rounds):
            for label, arm in (("base", None), ("adapter", adapter)):
                started = time.perf_counter()
                reply = gateway.complete(PROMPT, max_tokens=tokens, seed=round_, temperature=0.8, adapter=arm)
                spent[label][0] += reply.completion_tokens
                spent[label][1] += time.perf_counter() - started
    speed = {label: n / s for label, (n, s) in spent.items()}
    return {"base_tok_s": speed["base"], "adapter_tok_s": speed["adapter"],
            "ratio": speed["adapter"] / speed["base"], "tokens": {k: v[0] for k, v in spent.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/smollm2-135m")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = measure(args.model, args.rank, args.tokens, args.rounds)
    print(f"{args.model}, LoRA rank {args.rank} on every linear layer, {args.rounds} x {args.tokens} tokens per arm")
    print(f"  without adapter: {result['base_tok_s']:.1f} tok/s ({result['tokens']['base']} tokens)")
    print(f"  with adapter:    {result['adapter_tok_s']:.1f} tok/s ({result['tokens']['adapter']} tokens)")
    print(f"  adapter / base:  {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
