"""The grid of ``seasoned bench``: options (CLI strings, lists or a YAML/JSON file), validation, and arms.

An arm is one combination of environment x model x strategy x allocation policy x token budget x memory,
at the grid's seed and per-sample token cap. Every arm of an environment runs the same tasks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seasoned.errors import GridError
from seasoned.settings import settings

DEFAULTS: dict[str, Any] = {
    "env": ["addition"], "strategy": ["single", "best_of_n-8", "adaptive-8"], "budget": [None],
    "allocation": ["uniform"], "memory": [False], "model": None, "n": 20, "seed": 0, "difficulty": None,
    "max_tokens": 48, "workers": 1, "window": 10, "ray": None, "memory_url": None, "record": True,
}
OPTIONS = tuple(DEFAULTS)
POLICIES = ("uniform", "difficulty", "learned")
NO_CAP = ("none", "inf", "unlimited", "")


@dataclass(frozen=True)
class Arm:
    """One arm of the grid. ``allocation`` is None for single-stage environments (it does not apply);
    ``budget`` is the token cap per task (None: no cap)."""

    env: str
    model: str
    strategy: str
    allocation: str | None
    budget: int | None
    memory: bool
    seed: int
    max_tokens: int

    @property
    def key(self) -> str:
        """A stable identity, written with every row (resume and summaries match on it)."""
        return json.dumps(asdict(self), sort_keys=True)

    @property
    def slug(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:10]

    def fields(self) -> dict:
        return asdict(self)

    def label(self, varying: Iterable[str] = ("env", "model", "strategy", "allocation", "budget", "memory")) -> str:
        """A short readable name showing only the fields that vary in the grid."""
        parts = []
        for name in varying:
            value = getattr(self, name)
            if name == "memory":
                parts.append("memory " + ("on" if value else "off"))
            elif name == "budget":
                parts.append(f"budget {value if value is not None else 'none'}")
            elif value is not None:
                parts.append(str(value))
        return " / ".join(parts) or self.strategy


@dataclass
class GridConfig:
    envs: list[str]
    strategies: list[str]
    budgets: list[int | None]
    allocations: list[str]
    memory: list[bool]
    models: list[str]
    n: int = 20
    seed: int = 0
    difficulty: int | None = None
    max_tokens: int = 48
    workers: int = 1
    window: int = 10
    ray: str | None = None
    memory_url: str | None = None
    record: bool = True
    multi_stage: dict[str, bool] = field(default_factory=dict)

    def arms(self) -> list[Arm]:
        """Every arm, environment-major (allocation only for multi-stage environments)."""
        arms = []
        for env in self.envs:
            allocations = self.allocations if self.multi_stage.get(env) else [None]
            for model in self.models:
                for strategy in self.strategies:
                    for allocation in allocations:
                        for budget in self.budgets:
                            for memory in self.memory:
                                arms.append(Arm(env, model, strategy, allocation, budget, memory,
                                                self.seed, self.max_tokens))
        return arms

    def varying(self) -> list[str]:
        """The arm fields that take more than one value (for labels and tables)."""
        arms = self.arms()
        names = ["env", "model", "strategy", "allocation", "budget", "memory"]
        return [n for n in names if len({getattr(a, n) for a in arms}) > 1] or ["strategy"]

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("multi_stage")
        return data


# --- parsing -------------------------------------------------------------------------------------------
def split(value: Any, option: str) -> list:
    """A list from ``"a,b"``, a list, or a single value."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (int, bool)):
        return [value]
    raise GridError(f"--{option}: expected a comma-separated list, got {value!r}")


def parse_budgets(value: Any) -> list[int | None]:
    budgets: list[int | None] = []
    for part in split(value, "budget"):
        if part is None or (isinstance(part, str) and part.lower() in NO_CAP):
            budgets.append(None)
            continue
        try:
            number = int(part)
        except (TypeError, ValueError):
            raise GridError(f"--budget: {part!r} is not a whole number of tokens (or 'none' for no cap)") from None
        if number < 1:
            raise GridError(f"--budget: token budgets must be positive, got {number}")
        budgets.append(number)
    return budgets


def parse_memory(value: Any) -> list[bool]:
    out = []
    for part in split(value, "memory"):
        if isinstance(part, bool):
            out.append(part)
        elif str(part).lower() in ("on", "true", "yes", "1"):
            out.append(True)
        elif str(part).lower() in ("off", "false", "no", "0"):
            out.append(False)
        else:
            raise GridError(f"--memory: {part!r} is not on or off (e.g. --memory on,off)")
    return out


def _int(value: Any, option: str, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise GridError(f"--{option}: expected a whole number, got {value!r}") from None
    if number < minimum or isinstance(value, bool):
        raise GridError(f"--{option}: must be >= {minimum}, got {value!r}")
    return number


def _unique(values: list, option: str) -> list:
    seen: list = []
    for value in values:
        if value in seen:
            raise GridError(f"--{option}: {value!r} is given twice")
        seen.append(value)
    if not seen:
        raise GridError(f"--{option}: give at least one value")
    return seen


def load_grid_file(path: str | Path) -> dict:
    """A grid file: JSON, or YAML (``.yaml``/``.yml``), with the option names as keys."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GridError(f"--config: cannot read {str(path)!r} ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise GridError("--config: YAML grid files need PyYAML (pip install pyyaml), or use JSON") from None
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except GridError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser error is a bad file
        raise GridError(f"--config: {str(path)!r} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise GridError(f"--config: {str(path)!r} must hold a mapping of options (env, strategy, budget, ...)")
    data = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(OPTIONS))
    if unknown:
        raise GridError(f"--config: unknown option(s) {', '.join(unknown)} in {str(path)!r}; "
                        f"known: {', '.join(OPTIONS)}")
    return data


def build_config(options: dict, file: str | Path | None = None) -> GridConfig:
    """The validated grid: explicit options over the grid file over the defaults."""
    from seasoned.envs import EnvError, get_env
    from seasoned.graphs.strategy import StrategyError, parse_strategy
    from seasoned.models import default_model

    merged = dict(DEFAULTS)
    if file is not None:
        merged.update(load_grid_file(file))
    merged.update({k: v for k, v in options.items() if v is not None})
    unknown = sorted(set(merged) - set(OPTIONS))
    if unknown:
        raise GridError(f"unknown option(s): {', '.join(unknown)}")

    envs = _unique([str(e) for e in split(merged["env"], "env")], "env")
    strategies = _unique([str(s) for s in split(merged["strategy"], "strategy")], "strategy")
    max_tokens = _int(merged["max_tokens"], "max-tokens", 1)
    for spec in strategies:
        try:
            parse_strategy(spec, max_tokens=max_tokens)
        except (StrategyError, ValueError) as exc:
            raise GridError(f"--strategy: {exc}") from None
    allocations = _unique([str(a) for a in split(merged["allocation"], "allocation")], "allocation")
    for policy in allocations:
        if policy not in POLICIES:
            raise GridError(f"--allocation: {policy!r} is unknown; use {', '.join(POLICIES)}")
    models = _unique([str(m) for m in split(merged["model"] or default_model(), "model")], "model")
    difficulty = None if merged["difficulty"] in (None, "") else _int(merged["difficulty"], "difficulty", 0)
    config = GridConfig(
        envs=envs, strategies=strategies, budgets=_unique(parse_budgets(merged["budget"]), "budget"),
        allocations=allocations, memory=_unique(parse_memory(merged["memory"]), "memory"), models=models,
        n=_int(merged["n"], "n", 1), seed=_int(merged["seed"], "seed", 0), difficulty=difficulty,
        max_tokens=max_tokens, workers=_int(merged["workers"], "workers", 1),
        window=_int(merged["window"], "window", 1), ray=_ray_option(merged["ray"]),
        memory_url=merged["memory_url"] or None, record=bool(merged["record"]))
    for env in envs:
        try:
            probe = get_env(env).tasks(n=1, seed=config.seed, difficulty=difficulty)
        except EnvError as exc:
            raise GridError(f"--env/--difficulty: {exc}") from None
        config.multi_stage[env] = bool(probe and probe[0].stages)
    _check_memory_backend(config)
    return config


def _ray_option(value: Any) -> str | None:
    """None (no Ray), ``local`` (start or reuse a Ray on this machine) or a cluster address."""
    if value in (None, False):
        return None
    if value is True or str(value).strip() in ("", "local"):
        return "local"
    return str(value).strip()


def memory_url_for(config: GridConfig) -> str | None:
    return config.memory_url or settings().db_url


def _check_memory_backend(config: GridConfig) -> None:
    """Under Ray, memory-on arms need a memory every worker reaches: PostgreSQL (not SQLite) for the items,
    and a Chroma server for the index (several processes must not share one local Chroma folder)."""
    if config.ray is None or True not in config.memory:
        return
    url = memory_url_for(config)
    if not url or url.startswith("sqlite"):
        raise GridError(
            "--ray with --memory on needs a shared memory database: set SEASONED_DB_URL (or --memory-url) to a "
            "PostgreSQL URL such as postgresql+psycopg://user:pass@host/seasoned, and SEASONED_CHROMA_URL to a "
            f"Chroma server, so every Ray worker reads and writes the same memory (got {url or 'no URL'!r})")
    if not settings().chroma_url:
        raise GridError("--ray with --memory on needs a Chroma server every worker reaches: set SEASONED_CHROMA_URL "
                        "(e.g. http://host:8000); the memory database is " + url.split("@")[-1])
