"""llama.cpp's CPU settings that hold on every x86 machine this runs on.

ggml's CPU backend puts weights in "extra" buffer types when the CPU allows: AMX tiles on Intel CPUs that
report ``amx_int8`` and repacked layouts elsewhere. On AMX machines (seen on a 2-core Xeon VM) its AMX matrix
multiply crashes the process at the first decode (SIGSEGV in ``ggml_backend_amx_mul_mat``) on the embedded
model, through llama-cpp-python's high-level API as well as ours. So where the CPU reports AMX the extra
buffers are left out (the plain CPU kernels, AVX-512 there, compute the same model); elsewhere llama.cpp's
defaults stand. ``SEASONED_LOCAL_EXTRA_BUFFERS`` (``on``/``off``/``auto``) overrides the rule.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from seasoned.settings import settings

_patch_lock = threading.Lock()


@functools.cache
def cpu_has_amx() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_int8" in line.split() for line in text.splitlines())


def extra_buffers_allowed() -> bool:
    choice = settings().local_extra_buffers
    return choice == "on" or (choice == "auto" and not cpu_has_amx())


def use_safe_defaults() -> None:
    """Make ``llama_model_default_params`` (used by llama-cpp-python's ``Llama`` and by this package) leave
    the extra buffer types out where they are not allowed. Idempotent."""
    import llama_cpp.llama_cpp as low

    with _patch_lock:
        if getattr(low.llama_model_default_params, "_seasoned", False):
            return
        original = low.llama_model_default_params

        def defaults() -> Any:
            params = original()
            if not extra_buffers_allowed():
                params.use_extra_bufts = False
            return params

        defaults._seasoned = True  # type: ignore[attr-defined]
        low.llama_model_default_params = defaults
        import llama_cpp

        llama_cpp.llama_model_default_params = defaults


def open_llama(path: str | Path, **kwargs: Any) -> Any:
    """llama-cpp-python's ``Llama`` on ``path``, with the safe defaults."""
    use_safe_defaults()
    from llama_cpp import Llama

    return Llama(str(path), **kwargs)
