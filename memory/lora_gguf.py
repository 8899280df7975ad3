"""A trained LoRA (peft's A and B matrices) written as a llama.cpp adapter GGUF, with the ``gguf`` package.

What llama.cpp's adapter loader checks (``llama-adapter.cpp``): ``general.type`` is ``adapter``,
``general.architecture`` equals the base model's, ``adapter.type`` is ``lora``, ``adapter.lora.alpha`` is a
float32 (the scale applied is alpha / rank, as in peft), and every pair is named after a base tensor
(``blk.N.attn_q.weight.lora_a`` / ``.lora_b``) with ``lora_a`` of numpy shape (rank, in) and ``lora_b``
(out, rank) (gguf writes numpy shapes reversed, as ggml's ``ne``).

llama.cpp's converter permutes the rows of the Q and K projections of llama-architecture models (rotary
halves interleaved), and transformers undoes that when it loads such a GGUF: so ``lora_b`` of ``q_proj``
and ``k_proj`` (their output rows) gets the same permutation here. ``seasoned.base_digest`` records the
sha256 of the base GGUF; the local provider refuses the adapter for any other file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seasoned.errors import AdapterError

DIGEST_KEY = "seasoned.base_digest"
#: Base architectures whose conversion is verified (tests/test_memory_adapters.py compares llama.cpp with
#: the merged HF model on them); another architecture is refused before any training.
SUPPORTED_ARCHITECTURES = ("llama",)
#: HF module name -> llama.cpp tensor name (``{}`` is the block number).
TENSOR_NAMES = {
    "self_attn.q_proj": "blk.{}.attn_q.weight",
    "self_attn.k_proj": "blk.{}.attn_k.weight",
    "self_attn.v_proj": "blk.{}.attn_v.weight",
    "self_attn.o_proj": "blk.{}.attn_output.weight",
    "mlp.gate_proj": "blk.{}.ffn_gate.weight",
    "mlp.up_proj": "blk.{}.ffn_up.weight",
    "mlp.down_proj": "blk.{}.ffn_down.weight",
}
_MODULE = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)$")


@dataclass(frozen=True)
class BaseInfo:
    """What the conversion needs to know about the base GGUF."""

    architecture: str
    n_head: int
    n_head_kv: int
    n_layers: int
    n_params: int  # elements of all its tensors (what a dequantized float32 copy costs / 4)


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents() if hasattr(field, "contents") else field.parts[field.data[0]]
    return value.tolist() if hasattr(value, "tolist") else value


def read_base_info(path: str | Path) -> BaseInfo:
    """Architecture, head counts and size of a base GGUF (header only; the tensors are memory-mapped)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path), "r")
    except Exception as err:  # noqa: BLE001 - any parse failure is the same error for people
        raise AdapterError(f"{path}: not a readable GGUF file ({err})") from None
    arch = str(_field(reader, "general.architecture") or "")
    n_head = _field(reader, f"{arch}.attention.head_count")
    n_head_kv = _field(reader, f"{arch}.attention.head_count_kv") or n_head
    n_layers = _field(reader, f"{arch}.block_count")
    n_params = int(sum(int(t.n_elements) for t in reader.tensors))
    if not arch or n_head is None or n_layers is None:
        raise AdapterError(f"{path}: the GGUF does not say its architecture, head count and block count")
    return BaseInfo(arch, int(n_head), int(n_head_kv), int(n_layers), n_params)


def check_supported(info: BaseInfo, path: str | Path) -> None:
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        raise AdapterError(f"{path}: adapters are converted for the {', '.join(SUPPORTED_ARCHITECTURES)} "
                           f"architecture only, not {info.architecture!r}")


def permute_rows(matrix: Any, n_head: int) -> Any:
    """llama.cpp's row order of a llama Q/K projection (``convert_hf_to_gguf`` ``LlamaModel.permute``)."""
    rows = matrix.shape[0]
    return (matrix.reshape(n_head, 2, rows // n_head // 2, *matrix.shape[1:])
            .swapaxes(1, 2).reshape(matrix.shape))


def tensor_pairs(lora: dict[str, tuple[Any, Any]], info: BaseInfo) -> dict[str, Any]:
    """GGUF tensors from ``{hf module name: (A (rank, in), B (out, rank))}`` as float32 numpy arrays."""
    import numpy as np

    tensors: dict[str, Any] = {}
    for module, (a, b) in sorted(lora.items()):
        found = _MODULE.search(module)
        if found is None:
            raise AdapterError(f"LoRA on module {module!r}: no llama.cpp tensor for it")
        block, kind = int(found.group(1)), found.group(2)
        a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise AdapterError(f"LoRA on module {module!r}: shapes {a.shape} and {b.shape} do not pair")
        if kind == "self_attn.q_proj":
            b = permute_rows(b, info.n_head)
        elif kind == "self_attn.k_proj":
            b = permute_rows(b, info.n_head_kv)
        name = TENSOR_NAMES[kind].format(block)
        tensors[f"{name}.lora_a"] = np.ascontiguousarray(a)
        tensors[f"{name}.lora_b"] = np.ascontiguousarray(b)
    if not tensors:
        raise AdapterError("the LoRA has no weights to write")
    return tensors


def write_adapter(path: str | Path, lora: dict[str, tuple[Any, Any]], *, info: BaseInfo, alpha: float,
                  base_digest: str, metadata: dict[str, str] | None = None) -> None:
    """Write the llama.cpp adapter GGUF of ``lora`` (see the module docstring) to ``path``."""
    import gguf

    check_supported(info, path)
    tensors = tensor_pairs(lora, info)
    writer = gguf.GGUFWriter(str(path), info.architecture)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        writer.add_string(DIGEST_KEY, base_digest)
        for key, value in (metadata or {}).items():
            writer.add_string(f"seasoned.{key}", str(value))
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def read_adapter_digest(path: str | Path) -> str | None:
    """The ``seasoned.base_digest`` an adapter GGUF was written for (None when it has none)."""
    from gguf import GGUFReader

    try:
        value = _field(GGUFReader(str(path), "r"), DIGEST_KEY)
    except Exception:  # noqa: BLE001 - unreadable: no digest
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    return str(value) if value else None
