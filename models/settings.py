"""Process-wide settings read from the environment, and the offline defaults set before heavy imports."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_FALLBACK = "local/smollm2-135m"

_OFFLINE_DEFAULTS = {
    # litellm fetches a price list at import unless told to use its bundled copy.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Nothing is ever downloaded from a model hub at run time.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_defaults() -> None:
    """Set the offline environment defaults (a user's explicit values win)."""
    for key, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def default_model() -> str:
    """The model used when none is named: ``SEASONED_MODEL`` or the embedded SmolLM2."""
    return os.environ.get("SEASONED_MODEL") or DEFAULT_MODEL_FALLBACK


def seasoned_home() -> Path:
    """Where seasoned keeps its databases and indexes (``SEASONED_HOME``, default ``~/.seasoned``)."""
    home = Path(os.environ.get("SEASONED_HOME") or Path.home() / ".seasoned").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
