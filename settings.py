"""Every ``SEASONED_*`` environment variable, read in one place, and the offline defaults.

``settings()`` reads the environment afresh on each call, so a variable set after import, or by a test's
``monkeypatch.setenv``, is seen by the next reader. (Building a ``Settings`` takes ~1 ms, so the frozen
instance is reused while the ``SEASONED_*`` variables stay as they were.) An empty variable counts as unset. A value that cannot be used raises ``SettingsError`` naming the variable.
Every field is documented in the README's Settings table (a test keeps them in step).

``SEASONED_SANDBOX_ROOTS`` is not a setting: the sandbox sets it for the commands it runs in ``guard``
mode, and the guard hook reads it inside them.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from seasoned.errors import SettingsError

ENV_PREFIX = "SEASONED_"
DEFAULT_MODEL = "local/smollm2-135m"
DEFAULT_LOCAL_N_CTX = 4096
DEFAULT_SOLVE_VALUE = 4000.0  # tokens: a verified answer is worth this much compute (``Agent(solve_value=...)``)

_OFFLINE_DEFAULTS = {
    # litellm fetches a price list at import unless told to use its bundled copy.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # Nothing is ever downloaded from a model hub at run time.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


class Settings(BaseSettings):
    """The process-wide settings: field ``db_url`` is the variable ``SEASONED_DB_URL``, and so on."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore", frozen=True,
                                      protected_namespaces=())

    home: Path = Field(default_factory=lambda: Path.home() / ".seasoned",
                       description="where databases, indexes, caches and checkpoints live")
    model: str = Field(DEFAULT_MODEL, description="the model used when none is named")
    db_url: str | None = Field(None, description="SQLAlchemy URL of the memory + run database")
    chroma_url: str | None = Field(None, description="a Chroma server (http(s)://host:port) instead of the local index")
    embed_model: Path | None = Field(None, description="a local sentence-transformers folder to embed with")
    local_n_ctx: int = Field(DEFAULT_LOCAL_N_CTX, description="context size of `local/` models")
    local_threads: int | None = Field(None, ge=1, description="CPU threads of `local/` models (default: the "
                                      "cores not busy when the model loads)")
    local_extra_buffers: Literal["auto", "on", "off"] = Field(
        "auto", description="llama.cpp's extra CPU weight buffers (AMX, repacked): auto leaves them out where the "
        "CPU has AMX (its matrix multiply crashes there)")
    swe_repos: str | None = Field(None, description="directories (os.pathsep-separated) of SWE-bench repositories")
    api_keys: str = Field("", description="API keys of `seasoned serve`: key1=namespace1,key2=namespace2")
    chromium: str | None = Field(None, description="the Chromium binary the browser tools and web envs use")
    train_every: int = Field(12, ge=0, description="train a LoRA adapter of a local model every this many new "
                             "verified demonstrations of a namespace, model and scope (0: never by itself)")
    train_max_seconds: float = Field(600.0, gt=0, description="time cap of one adapter training (it stops early)")
    train_max_rss_mb: float = Field(4096.0, gt=0, description="memory cap (resident MB) of one adapter training")
    solve_value: float = Field(DEFAULT_SOLVE_VALUE, gt=0,
                               description="what a verified answer is worth, in tokens (the give-up rule's value)")

    @field_validator("home", "embed_model")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


def env_name(field: str) -> str:
    """The environment variable of a settings field (``db_url`` -> ``SEASONED_DB_URL``)."""
    return ENV_PREFIX + field.upper()


def settings() -> Settings:
    """The settings as the environment says now."""
    return _settings_for(tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX))))


@functools.lru_cache(maxsize=8)
def _settings_for(_variables: tuple[tuple[str, str], ...]) -> Settings:
    """``Settings()`` while the ``SEASONED_*`` variables are ``_variables`` (the cache key)."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "?"
        raise SettingsError(f"{env_name(field)}: {first['msg']} (got {first.get('input')!r})") from None


def apply_offline_defaults() -> None:
    """Set the offline environment defaults (a user's explicit values win)."""
    for key, value in _OFFLINE_DEFAULTS.items():
        os.environ.setdefault(key, value)


def quiet_third_party(verbose: bool) -> None:
    """Third-party progress bars (``Loading weights``) and shutdown warnings (litellm's ``Task was
    destroyed but it is pending!``) are noise in a command's output: off unless ``verbose`` (``-v``).
    The commands call it first, before those libraries are imported."""
    if verbose:
        return
    for key, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("TQDM_DISABLE", "1")):
        os.environ.setdefault(key, value)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def default_model() -> str:
    """The model used when none is named: ``SEASONED_MODEL`` or the embedded SmolLM2."""
    return settings().model


def seasoned_home() -> Path:
    """Where seasoned keeps its databases and indexes (``SEASONED_HOME``, default ``~/.seasoned``), created."""
    home = settings().home
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_db_url() -> str:
    """``SEASONED_DB_URL`` or the SQLite file ``$SEASONED_HOME/memory.db``."""
    return settings().db_url or f"sqlite:///{seasoned_home() / 'memory.db'}"
