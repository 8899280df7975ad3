"""Request bodies (pydantic), the ``model`` field grammar, and messages -> task text.

Model field: ``[STRATEGY:]MODEL``. ``STRATEGY`` is a strategy name, optionally ``-N`` (``single``,
``best_of_n-8``, ``self_consistency-5``, ``revise-2``, ``adaptive``, ``adaptive-16``); ``MODEL`` is a model
string the server serves, with ``|`` between fallbacks (``openai/gpt-4o-mini|local/smollm2-135m``). A model
string may itself contain ``:`` (``ollama/llama3:8b``): the prefix is a strategy only when it names one.
A bare strategy (``best_of_n-4``) means the server's default model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from seasoned.errors import ApiError
from seasoned.graphs.strategy import StrategyConfig, StrategyError, parse_strategy

GRAMMAR = ("[STRATEGY:]MODEL - STRATEGY is one of single, best_of_n, self_consistency, revise, adaptive, "
           "optionally with -N (best_of_n-8: 8 samples; revise-2: 2 rounds; adaptive-16: at most 16 samples); "
           "default: the server's (single: one call). MODEL is a served model string, fallbacks joined with '|'. "
           "A bare STRATEGY uses the server's default model.")
EXAMPLE_STRATEGIES = ("single", "best_of_n-8", "self_consistency-5", "revise-2", "adaptive")
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1  # what SQL, numpy and providers' seeds can hold


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, tool_call_id... are accepted

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(None, ge=0, le=INT64_MAX)
    max_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_calls: int | None = Field(None, ge=0, le=INT64_MAX)
    max_seconds: float | None = Field(None, ge=0, allow_inf_nan=False)


class SeasonedOptions(BaseModel):
    """The ``seasoned`` extension of a chat completion request."""

    model_config = ConfigDict(extra="forbid")

    budget: BudgetSpec | None = None
    namespace: str | None = Field(None, min_length=1, max_length=256)
    memory: bool = True
    strategy: dict[str, Any] | None = Field(None, description="StrategyConfig fields, e.g. {'n': 4}")


MAX_STOP = 4  # as OpenAI
MAX_STOP_CHARS = 1000
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


class ChatCompletionRequest(BaseModel):
    """The OpenAI body. ``stop`` and ``response_format`` go to every solver call and the reply is checked
    against them; unlisted informational fields (user, metadata...) are accepted; fields the service
    cannot honour (tools, functions, n > 1, logprobs, top_logprobs) are refused with a 400 naming them."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=1000)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64_MAX)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    n: int | None = Field(None, ge=1, le=INT64_MAX)
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    seasoned: SeasonedOptions | None = None

    def refuse_unsupported(self) -> None:
        if self.n not in (None, 1):
            raise ApiError(400, "n: only one choice per request is supported (n=1)", param="n")
        for name in ("tools", "functions"):
            if (self.model_extra or {}).get(name):
                raise ApiError(400, f"{name}: tool calling is not supported by this service", param=name)
        for name in ("logprobs", "top_logprobs"):
            if (self.model_extra or {}).get(name):
                raise ApiError(400, f"{name}: not supported by this service", param=name)

    def client_sampling(self) -> dict[str, Any]:
        """``stop`` and ``response_format`` as the gateway takes them, checked (400 naming the field)."""
        sampling: dict[str, Any] = {}
        if self.stop is not None:
            stops = [self.stop] if isinstance(self.stop, str) else list(self.stop)
            if len(stops) > MAX_STOP or any(not s or len(s) > MAX_STOP_CHARS for s in stops):
                raise ApiError(400, f"stop: up to {MAX_STOP} non-empty strings of at most {MAX_STOP_CHARS} "
                               "characters", param="stop")
            if stops:
                sampling["stop"] = stops
        if self.response_format is not None:
            kind = self.response_format.get("type")
            if kind not in RESPONSE_FORMATS:
                raise ApiError(400, f"response_format.type: expected one of {', '.join(RESPONSE_FORMATS)}, "
                               f"got {kind!r}", param="response_format.type")
            if kind == "json_schema":
                check_json_schema(self.response_format.get("json_schema"))
            if kind != "text":
                sampling["response_format"] = self.response_format
        return sampling


def check_json_schema(spec: Any) -> None:
    """``response_format.json_schema``: ``{"name": ..., "schema": {...}, "strict": ...}`` with a valid schema."""
    param = "response_format.json_schema"
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"].strip():
        raise ApiError(400, f"{param}: expected an object with a 'name' and a 'schema'", param=param)
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise ApiError(400, f"{param}.schema: expected a JSON Schema object", param=f"{param}.schema")
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ApiError(400, f"{param}.schema: not a valid JSON Schema ({exc.message})",
                       param=f"{param}.schema") from None


def reply_format_error(text: str, sampling: dict[str, Any]) -> str | None:
    """Why ``text`` does not satisfy the client's ``response_format``, or None when it does."""
    wanted = sampling.get("response_format") or {}
    if wanted.get("type") not in ("json_object", "json_schema"):
        return None
    import json

    import jsonschema

    try:
        value = json.loads(text)
    except ValueError:
        return "the reply is not JSON"
    if not isinstance(value, dict):
        return "the reply is not a JSON object"
    if wanted["type"] == "json_schema":
        schema = wanted["json_schema"].get("schema", {})
        error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(schema)(schema).iter_errors(value))
        if error is not None:
            return f"the reply does not match the schema: {error.message}"
    return None


def cut_at_stop(text: str, sampling: dict[str, Any]) -> str:
    """``text`` up to the first stop sequence (the provider stops there; this makes sure of it)."""
    cuts = [text.find(stop) for stop in sampling.get("stop") or []]
    cuts = [cut for cut in cuts if cut >= 0]
    return text[:min(cuts)] if cuts else text


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    success: bool
    comment: str | None = Field(None, max_length=10_000)


class ModelChoice(NamedTuple):
    strategy: str | None  # None: the server's default strategy
    model: str | None  # None: the server's default model


def _is_strategy(text: str) -> bool:
    if "/" in text:
        return False
    try:
        parse_strategy(text)
    except (StrategyError, ValueError):
        return False
    return True


def parse_model_field(value: str) -> ModelChoice:
    """``adaptive:local/smollm2-135m`` -> (adaptive, local/smollm2-135m); see the module docstring."""
    text = value.strip()
    prefix, sep, rest = text.partition(":")
    if sep and _is_strategy(prefix):
        if not rest.strip():
            raise ApiError(400, f"model {value!r}: nothing after '{prefix}:'; use STRATEGY:MODEL", param="model")
        return ModelChoice(prefix, rest.strip())
    if _is_strategy(text):
        return ModelChoice(text, None)
    return ModelChoice(None, text)


def strategy_config(name: str, overrides: dict[str, Any] | None, *, max_tokens: int | None,
                    temperature: float | None, seed: int | None) -> StrategyConfig:
    """The run's strategy: the named one, then ``seasoned.strategy`` fields, then the standard fields."""
    try:
        base = parse_strategy(name)
    except StrategyError as exc:
        raise ApiError(400, f"model: {exc}", param="model") from None
    updates = dict(overrides or {})
    unknown = sorted(set(updates) - set(StrategyConfig.model_fields))
    if unknown:
        raise ApiError(400, f"seasoned.strategy.{unknown[0]}: unknown setting; settings: "
                       f"{', '.join(StrategyConfig.model_fields)}", param=f"seasoned.strategy.{unknown[0]}")
    standard = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
    updates.update({k: v for k, v in standard.items() if v is not None})
    try:
        return StrategyConfig(**{**base.model_dump(), **updates})
    except ValidationError as exc:  # name the field: the extension's, or the standard one it came from
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        param = f"seasoned.strategy.{field}" if field in (overrides or {}) or field not in standard else field
        raise ApiError(400, f"{param}: {first.get('msg', 'invalid value')}", param=param) from None


def task_from_messages(messages: list[ChatMessage]) -> str:
    """The conversation as one task: system text, then earlier turns as context, then the last user
    message (which must be last). A lone user message is the task unchanged."""
    last = messages[-1]
    index = len(messages) - 1
    if last.role != "user":
        raise ApiError(400, f"messages[{index}].role: the last message must be from the user",
                       param=f"messages[{index}].role")
    question = last.text().strip()
    if not question:
        raise ApiError(400, f"messages[{index}].content: must not be empty", param=f"messages[{index}].content")
    system = [m.text().strip() for m in messages[:-1] if m.role in ("system", "developer") and m.text().strip()]
    turns = [f"{m.role}: {m.text().strip()}" for m in messages[:-1]
             if m.role not in ("system", "developer") and m.text().strip()]
    parts = []
    if system:
        parts.append("\n".join(system))
    if turns:
        parts.append("Conversation so far:\n" + "\n".join(turns))
    parts.append(question if not parts else f"Now answer:\n{question}")
    return "\n\n".join(parts)


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "messages", 0, "role")`` -> ``messages[0].role``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith(("function-", "tagged-union", "str", "list[", "int", "float")):
            text += ("." if text else "") + str(part)
    return text or "body"


def validation_error(exc: RequestValidationError | Any, prefix: str = "") -> ApiError:
    """FastAPI's 422 (or a pydantic error) as a 400 naming the first field at fault."""
    first = exc.errors()[0]
    path = field_path(first.get("loc", ()))
    if prefix:
        path = prefix if path == "body" else f"{prefix}.{path}"
    if first.get("type") == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})",
                        param="body", code="invalid_json")
    message = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        message = "this field is required"
    return ApiError(400, f"{path}: {message}", param=path, code=first.get("type"))
