"""Server settings: the default model, what may be served, storage, API keys and limits.

Keys map an API key to the one namespace it may read and write. They come from ``SEASONED_API_KEYS``
(``"key1=namespace1,key2=namespace2"``) and/or a keys file (``--keys-file``): a JSON object
``{"key": "namespace"}``, a JSON list of ``{"key": ..., "namespace": ...}``, or lines ``key=namespace``
(blank lines and ``#`` comments ignored).
"""

from __future__ import annotations

import ipaddress
import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from seasoned.errors import MemoryConfigError, ServerConfigError
from seasoned.memory.bank import check_namespace
from seasoned.models import untrusted
from seasoned.settings import default_model, env_name, settings

KEYS_ENV = env_name("api_keys")
MIN_KEY_LENGTH = 8
BUDGET_FIELDS = ("max_tokens", "max_usd", "max_calls", "max_seconds")


class ServerSettings(BaseModel):
    """Everything ``create_app`` needs. ``models``: extra models clients may ask for besides ``model``
    (``"*"`` serves any model string the gateway accepts). ``budget``: the per-request budget when a
    request names none; ``max_budget``: caps no request may exceed (402 if it asks for more)."""

    model: str = Field(default_factory=default_model)
    models: list[str] = Field(default_factory=list)
    # The strategy of a bare model name (``seasoned serve --strategy``): ``single`` makes one call, as a
    # plain API would; ``adaptive`` samples until the answers agree (up to 8 samples plus a judge call).
    strategy: str = "single"
    db_url: str | None = None
    chroma_path: str | None = None
    memory: bool = True
    memory_channel: str = "auto"  # how memory reaches the model: auto (learned), none, demos, notes, demos+notes
    keys: dict[str, str] = Field(default_factory=dict)
    default_namespace: str = "default"
    budget: dict[str, float] = Field(default_factory=lambda: {"max_tokens": 8000, "max_seconds": 300})
    max_budget: dict[str, float] = Field(default_factory=dict)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_concurrent_per_key: int = Field(64, ge=1)
    # None: in the database when it is shared (not SQLite), so replicas enforce one limit; else in-process.
    shared_limits: bool | None = None
    # Against clients that hold connections without using them (``guards``): seconds and counts.
    header_timeout: float = Field(10.0, gt=0, allow_inf_nan=False)
    body_timeout: float = Field(30.0, gt=0, allow_inf_nan=False)
    send_timeout: float = Field(30.0, gt=0, allow_inf_nan=False)
    max_connections: int = Field(1024, ge=1)
    max_open_per_key: int = Field(128, ge=1)
    gateway_concurrency: int = Field(64, ge=1)
    checkpoint: bool = True

    @field_validator("keys")
    @classmethod
    def _keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for key, namespace in keys.items():
            check_key(key, "keys")
            check_namespace(namespace)
        return keys

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        from seasoned.graphs.strategy import StrategyError, parse_strategy

        try:
            parse_strategy(value)
        except (StrategyError, ValueError) as exc:
            raise ValueError(f"strategy: {exc}") from None
        return value.strip()

    @field_validator("memory_channel")
    @classmethod
    def _memory_channel(cls, value: str) -> str:
        from seasoned.memory.channels import CHANNELS

        if value != "auto" and value not in CHANNELS:
            raise ValueError(f"memory_channel must be 'auto' or one of {', '.join(CHANNELS)}, not {value!r}")
        return value

    @field_validator("budget", "max_budget")
    @classmethod
    def _budget(cls, budget: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(budget) - set(BUDGET_FIELDS))
        if unknown:
            raise ValueError(f"unknown budget field(s) {', '.join(unknown)}; use {', '.join(BUDGET_FIELDS)}")
        for name, value in budget.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"budget {name} must be a finite number >= 0, got {value}")
        return budget

    @field_validator("default_namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        return check_namespace(namespace)

    @property
    def served_models(self) -> list[str]:
        """The models listed by ``GET /v1/models`` (the default first; ``*`` is not a model)."""
        return list(dict.fromkeys([self.model, *[m for m in self.models if m != "*"]]))

    @property
    def any_model(self) -> bool:
        return "*" in self.models


def check_key(key: str, where: str) -> str:
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH or any(c.isspace() for c in key):
        raise ServerConfigError(f"{where}: an API key must be at least {MIN_KEY_LENGTH} characters "
                                "without spaces")
    return key


def _add(keys: dict[str, str], key: str, namespace: str, where: str) -> None:
    key, namespace = key.strip(), namespace.strip()
    check_key(key, where)
    try:
        check_namespace(namespace)
    except MemoryConfigError as exc:
        raise ServerConfigError(f"{where}: {exc}") from None
    if keys.get(key, namespace) != namespace:
        raise ServerConfigError(f"{where}: the same key is given two namespaces ({keys[key]!r}, {namespace!r})")
    keys[key] = namespace


def parse_keys(spec: str, where: str = KEYS_ENV) -> dict[str, str]:
    """``"key1=ns1,key2=ns2"`` -> {key: namespace}."""
    keys: dict[str, str] = {}
    for index, entry in enumerate(part for part in spec.split(",") if part.strip()):
        key, sep, namespace = entry.partition("=")
        if not sep or not namespace.strip():
            raise ServerConfigError(f"{where}: entry {index + 1} should be key=namespace")
        _add(keys, key, namespace, f"{where} entry {index + 1}")
    return keys


def load_keys_file(path: str | Path) -> dict[str, str]:
    """Keys from a JSON object / JSON list / ``key=namespace`` lines file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ServerConfigError(f"--keys-file {str(path)!r}: cannot read it ({exc.strerror})") from None
    where = f"--keys-file {str(path)!r}"
    keys: dict[str, str] = {}
    if text.lstrip().startswith(("{", "[")):
        try:
            data: Any = untrusted.loads(text)
        except json.JSONDecodeError as exc:
            raise ServerConfigError(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        except ValueError as exc:  # nested too deep
            raise ServerConfigError(f"{where}: {exc}") from None
        entries = data.items() if isinstance(data, dict) else [
            (e.get("key", ""), e.get("namespace", "")) if isinstance(e, dict) else ("", "") for e in data]
        for index, (key, namespace) in enumerate(entries):
            if not isinstance(key, str) or not isinstance(namespace, str) or not namespace:
                raise ServerConfigError(f"{where}: entry {index + 1} needs a string key and namespace")
            _add(keys, key, namespace, f"{where} entry {index + 1}")
        return keys
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, namespace = line.partition("=")
        if not sep or not namespace.strip():
            raise ServerConfigError(f"{where} line {number}: expected key=namespace")
        _add(keys, key, namespace, f"{where} line {number}")
    return keys


def gather_keys(keys_file: str | Path | None = None, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Keys from ``SEASONED_API_KEYS`` (or ``environ``'s) and the keys file together (a key given twice must
    agree)."""
    keys = parse_keys(settings().api_keys if environ is None else environ.get(KEYS_ENV, ""))
    if keys_file:
        for key, namespace in load_keys_file(keys_file).items():
            _add(keys, key, namespace, f"--keys-file {str(keys_file)!r}")
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: dict[str, str]) -> None:
    """Refuse to listen beyond loopback without API keys."""
    if not is_loopback(host) and not keys:
        raise ServerConfigError(
            f"--host {host}: listening beyond this machine requires API keys; set {KEYS_ENV}="
            "'key1=namespace1,key2=namespace2' or pass --keys-file PATH (or bind 127.0.0.1)")
