"""The ``swe`` environment: SWE-bench instances (JSONL, repo as local path or git bundle), no Docker."""

from .env import SWEEnv, SWESession
from .instances import SWEInstance, load_jsonl

__all__ = ["SWEEnv", "SWEInstance", "SWESession", "load_jsonl"]
