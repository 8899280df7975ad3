"""LoRA adapters for ``local/`` models: checked against the base model's file before llama.cpp loads them.

An adapter is a llama.cpp adapter GGUF (``general.type = adapter``, ``adapter.type = lora``) whose metadata key
``seasoned.base_digest`` holds the sha256 of the base GGUF it was trained on. ``check_adapter`` refuses
(``ModelConfigError``) a missing file, a GGUF that is not a LoRA adapter, and one made for another file, before
any llama.cpp code reads its tensors. Digests are computed once per file version (path, mtime, size).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

from seasoned.errors import ModelConfigError

DIGEST_KEY = "seasoned.base_digest"
MAX_METADATA_BYTES = 1 << 20  # an adapter's header is small: a bigger string field is not ours

_digests: dict[tuple[str, int, int], str] = {}
_checked: dict[tuple, Path] = {}
_lock = threading.Lock()


def file_digest(path: Path) -> str:
    """sha256 of a file, computed once per (path, mtime, size)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _digests:
            return _digests[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    with _lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]


def adapter_metadata(path: Path) -> dict[str, Any]:
    """The string keys of a GGUF file that say what it is and what it was made for (``ModelConfigError`` when
    it is not a readable GGUF)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ModelConfigError("adapter: reading an adapter GGUF needs the gguf package: "
                               "pip install 'seasoned[local]'") from None
    try:
        reader = GGUFReader(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure means: not a GGUF we can use
        raise ModelConfigError(f"adapter: {path} is not a readable GGUF file ({exc})") from None
    fields = {}
    for name in ("general.type", "general.architecture", "adapter.type", DIGEST_KEY):
        found = reader.fields.get(name)
        value = found.contents() if found is not None else None
        if isinstance(value, str) and len(value) <= MAX_METADATA_BYTES:
            fields[name] = value
    return fields


def check_adapter(model_path: Path, adapter: str | Path, model_name: str) -> Path:
    """The adapter's resolved path once it is known to be a LoRA adapter GGUF made for ``model_path``."""
    path = Path(adapter).expanduser()
    if not path.is_file():
        raise ModelConfigError(f"adapter: no file at {path.resolve()}")
    path = path.resolve()
    stat, model_stat = path.stat(), model_path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, str(model_path), model_stat.st_mtime_ns, model_stat.st_size)
    with _lock:
        if key in _checked:
            return _checked[key]
    meta = adapter_metadata(path)
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        raise ModelConfigError(f"adapter: {path} is not a LoRA adapter GGUF (general.type="
                               f"{meta.get('general.type')!r}, adapter.type={meta.get('adapter.type')!r})")
    made_for = meta.get(DIGEST_KEY)
    if not isinstance(made_for, str) or not made_for:
        raise ModelConfigError(f"adapter: {path} does not say which model file it was trained on (no "
                               f"{DIGEST_KEY} key): seasoned loads an adapter only for its own base model")
    if made_for != file_digest(model_path):
        raise ModelConfigError(f"adapter: {path} was trained on another model file (sha256 {made_for[:12]}...), "
                               f"not on {model_name} ({model_path.name}, sha256 {file_digest(model_path)[:12]}...)")
    with _lock:
        _checked[key] = path
    return path
