"""Test-time scaling strategies and their settings.

Strategy strings (CLI, HTTP ``model`` field): ``single``, ``best_of_n-8``, ``self_consistency-5``,
``revise-3`` (rounds), ``adaptive`` or ``adaptive-16`` (most samples).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from seasoned.errors import StrategyError

StrategyName = Literal["single", "best_of_n", "self_consistency", "revise", "adaptive"]
STRATEGIES: tuple[str, ...] = ("single", "best_of_n", "self_consistency", "revise", "adaptive")


class StrategyConfig(BaseModel):
    name: StrategyName = "adaptive"
    n: int = Field(8, ge=1, le=256, description="samples (best_of_n, self_consistency); most samples (adaptive)")
    wave_size: int = Field(2, ge=1, le=64, description="adaptive: samples per parallel wave")
    first_wave: int | None = Field(1, ge=1, le=64,
                                   description="adaptive with a check: samples in the first wave (default 1: a "
                                               "question one sample answers costs one sample; None: wave_size)")
    max_rounds: int = Field(2, ge=0, le=20, description="revise: critique/revise rounds")
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, description="per sample")
    judge: bool | None = Field(None, description="use the LLM judge; None: the strategy decides")
    judge_model: str | None = None
    stop_confidence: float = Field(0.7, gt=0.0, le=1.0,
                                   description="stop (and call the answer verified) when a verifier's acceptance, "
                                               "discounted by its observed precision, reaches this")
    weighted_vote: bool = Field(False, description="self_consistency: weight votes by judge scores")
    use_env_check: bool = Field(True, description="verify with the environment's own check when there is one")
    seed: int | None = None

    @property
    def label(self) -> str:
        if self.name in ("best_of_n", "self_consistency", "adaptive"):
            return f"{self.name}-{self.n}"
        if self.name == "revise":
            return f"revise-{self.max_rounds}"
        return self.name


def parse_strategy(spec: str | StrategyConfig | dict | None, **overrides) -> StrategyConfig:
    """A ``StrategyConfig`` from a name like ``best_of_n-8`` (or a config / dict), with overrides."""
    if isinstance(spec, StrategyConfig):
        return spec.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if isinstance(spec, dict):
        return StrategyConfig(**{**spec, **{k: v for k, v in overrides.items() if v is not None}})
    text = (spec or "adaptive").strip()
    name, _, number = text.partition("-")
    name = name.replace("-", "_")
    if name not in STRATEGIES:
        raise StrategyError(f"strategy {text!r} is unknown: use one of {', '.join(STRATEGIES)} "
                            "(optionally with -N, e.g. best_of_n-8)")
    settings: dict = {"name": name}
    if number:
        if not number.isdigit() or int(number) < 1:
            raise StrategyError(f"strategy {text!r}: the part after '-' must be a positive whole number")
        settings["max_rounds" if name == "revise" else "n"] = int(number)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return StrategyConfig(**settings)
