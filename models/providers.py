"""litellm set-up and what the gateway needs to know per provider: validation, token estimates, prices.

litellm is imported lazily (first call), after the offline defaults are set, and our in-process
providers are registered with it once: ``local/`` (llama.cpp), ``scripted/`` (tests) and ``sim/`` (the
calibrated simulator). The gateway calls their handlers directly (``acomplete_in_process``): litellm's
logging, cost and response-metadata machinery cost ~1 ms of CPU a call and add nothing for them.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from seasoned.errors import ModelCallError, ModelConfigError
from seasoned.settings import apply_offline_defaults

from . import scripted, sim
from .tokens import count_message_tokens, message_text

FREE_PROVIDERS = ("local", "scripted", "sim")
REMOTE_ESTIMATE_MARGIN = 1.1  # tokenizers differ between providers: reserve a little more than counted
REMOTE_ESTIMATE_SLACK = 16

_lock = threading.Lock()
_litellm: Any = None
_handlers: dict[str, Any] = {}  # provider -> its litellm CustomLLM (in-process providers)
_validated: set[str] = set()


def litellm():
    """The litellm module, with our providers registered (imported on first use)."""
    global _litellm
    if _litellm is None:
        with _lock:
            if _litellm is None:
                apply_offline_defaults()
                import litellm as module

                from . import local

                module.suppress_debug_info = True
                module.drop_params = True  # a setting a provider lacks is dropped rather than failing the call
                handlers = {"local": local.make_handler(), "scripted": scripted.make_handler(),
                            "sim": sim.make_handler()}
                _handlers.update(handlers)
                existing = [entry for entry in module.custom_provider_map if entry.get("provider") not in handlers]
                module.custom_provider_map = existing + [
                    {"provider": name, "custom_handler": handler} for name, handler in handlers.items()
                ]
                from litellm.utils import custom_llm_setup

                custom_llm_setup()
                _litellm = module
    return _litellm


def in_process(model: str) -> bool:
    """Whether ``model`` is served by one of our in-process providers (``local/``, ``scripted/``, ``sim/``)."""
    return provider_of(model) in FREE_PROVIDERS


async def acomplete_in_process(model: str, messages: list[dict], max_tokens: int, params: dict,
                               timeout: float | None) -> Any:
    """What ``litellm.acompletion(model=..., num_retries=0)`` does for an in-process provider: its handler gets
    the same ``optional_params``, and its errors come out as litellm maps them (``litellm.exception_type``)."""
    litellm()  # registers the handlers
    provider, _, name = model.partition("/")
    optional = {key: value for key, value in params.items() if key not in ("api_base", "api_key")}
    optional.update(max_tokens=max_tokens, max_retries=0)
    try:
        return await _handlers[provider].acompletion(name, messages, optional_params=optional, timeout=timeout,
                                                     api_base=params.get("api_base"), api_key=params.get("api_key"))
    except Exception as exc:  # noqa: BLE001 - re-raised, mapped as litellm maps a provider's error
        from litellm.litellm_core_utils.exception_mapping_utils import exception_type

        raise exception_type(model=name, original_exception=exc, custom_llm_provider=provider,
                             completion_kwargs={"model": model, "messages": messages, **optional}) from None


def supports_response_schema(model: str) -> bool:
    """Whether the model honours a JSON-schema ``response_format``: ``local/`` models do (grammar-constrained
    decoding), and remote ones where litellm says so. ``scripted/`` takes it but replies what its script says
    (so it says False here: tests opt in), ``sim/`` refuses it. A fallback chain: only when every model does."""
    if "|" in model:
        return all(supports_response_schema(part.strip()) for part in model.split("|"))
    if provider_of(model) == "local":
        return True
    if provider_of(model) in FREE_PROVIDERS:
        return False
    try:
        return bool(litellm().supports_response_schema(model=model))
    except Exception:  # noqa: BLE001 - unknown to litellm's tables: no schema support
        return False


def check_request(chain: list[str], params: dict) -> None:
    """Refuse, before any call, what a model of ``chain`` would otherwise ignore: a ``response_format`` it
    cannot honour (``ModelCallError``, status 400, not transient) or one that is malformed, an ``adapter``
    for a model that is not local, a ``stop`` that is not text (``ModelConfigError``)."""
    from .grammar import grammar_of, normalize

    stop = params.get("stop")
    if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list)
                                                           and all(isinstance(s, str) for s in stop))):
        raise ModelConfigError(f"stop: expected a string or a list of strings, got {stop!r:.80}")
    if params.get("adapter") is not None:
        others = [m for m in chain if provider_of(m) != "local"]
        if others:
            raise ModelConfigError(f"adapter: LoRA adapters are served by local/ models only, not by {others[0]} "
                                   "(a remote model's fine-tuning goes through its provider)")
        if len(chain) > 1:
            raise ModelConfigError("adapter: an adapter belongs to one model file; name one model, not a "
                                   f"fallback chain ({'|'.join(chain)})")
    response_format = normalize(params.get("response_format"))
    if response_format is None:
        return
    for model in chain:
        provider = provider_of(model)
        if provider == "local":
            grammar_of(response_format)  # a malformed or unconvertible schema is refused here
        elif provider == "sim" or (provider not in FREE_PROVIDERS and not _takes_response_format(model)):
            raise ModelCallError(f"response_format: {model} cannot constrain its reply to "
                                 f"{response_format['type']} (ask without response_format, or use a model that "
                                 "takes it)", status_code=400)


def _takes_response_format(model: str) -> bool:
    module = litellm()
    try:
        name, provider, _, _ = module.get_llm_provider(model)
        return "response_format" in (module.get_supported_openai_params(model=name, custom_llm_provider=provider)
                                     or [])
    except Exception:  # noqa: BLE001 - unknown to litellm: let the provider answer for itself
        return True


def provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def validate(model: str) -> None:
    """Raise ``ModelConfigError`` naming what is wrong with a model string (checked once per name)."""
    if model in _validated:
        return
    provider, _, name = model.partition("/")
    if provider == "local":
        from . import local

        local.resolve_model_path(name)
    elif provider == "scripted":
        scripted.get(name)
        return  # scripted models may be redefined: check every time
    elif provider == "sim":
        sim.get(name)
        return
    else:
        module = litellm()
        try:
            module.get_llm_provider(model)
        except Exception:  # noqa: BLE001 - litellm raises several types for an unknown model string
            raise ModelConfigError(
                f"model {model!r} is not a model string litellm knows: use provider/model, e.g. "
                "'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest', 'ollama/llama3', "
                "'hosted_vllm/<name>', 'local/smollm2-135m' or 'local/<path>.gguf'"
            ) from None
    _validated.add(model)


DEFAULT_API_BASES = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


def api_base_used(model: str, explicit: str | None = None) -> str | None:
    """The URL a call to ``model`` goes to, as litellm picks it: ``api_base`` when given, else the
    provider's ``*_API_BASE`` (``OPENAI_BASE_URL`` too for openai), else litellm's default for the
    provider. None when it cannot be told (the error then names the settings instead)."""
    if explicit:
        return explicit
    provider = provider_of(model)
    if not provider or provider in ("local", "scripted", "sim"):
        return None
    names = [f"{provider.upper()}_API_BASE"] + (["OPENAI_BASE_URL"] if provider == "openai" else [])
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    try:
        found = litellm().get_llm_provider(model)[3]
    except Exception:  # noqa: BLE001 - only for an error message
        found = None
    return found or DEFAULT_API_BASES.get(provider)


async def estimate_prompt_tokens(model: str, messages: list[dict]) -> int:
    """An upper estimate of the prompt's tokens for this model (exact for local and scripted)."""
    provider, _, name = model.partition("/")
    if provider == "scripted":
        return scripted.count_prompt_tokens(name, messages)
    if provider == "sim":
        return sim.count_prompt_tokens(name, messages)
    if provider == "local":
        from . import local

        return await asyncio.to_thread(local.count_prompt_tokens, name, messages)
    try:
        counted = litellm().token_counter(model=model, messages=messages)
    except Exception:  # noqa: BLE001 - no tokenizer for this model: a character estimate
        counted = sum(len(message_text(m)) for m in messages) // 3 + count_message_tokens([])
    return int(counted * REMOTE_ESTIMATE_MARGIN) + REMOTE_ESTIMATE_SLACK


def price(model: str, prompt_tokens: int, completion_tokens: int) -> tuple[float, bool]:
    """(USD, known): litellm's price where it has one (``litellm.register_model`` adds more); local and
    scripted models are free; an unknown remote price counts as 0 and is marked unknown."""
    if provider_of(model) == "sim":
        return 0.0, True  # the simulator is free: no price lookup (it dominates a simulated call's overhead)
    module = litellm()
    if in_process(model) and not _has_price(module, model):
        return 0.0, True  # litellm's look-up of a name it has no price for costs ~0.5 ms of CPU
    try:
        prompt_cost, completion_cost = module.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt_cost + completion_cost), True
    except Exception:  # noqa: BLE001 - no price in litellm's tables
        return 0.0, provider_of(model) in FREE_PROVIDERS


def _has_price(module: Any, model: str) -> bool:
    """Whether a price was registered for an in-process model (``litellm.register_model``), with or without
    its provider prefix."""
    return model in module.model_cost or model.partition("/")[2] in module.model_cost


def model_used(response: Any, chain: list[str]) -> str:
    """Which model of a fallback chain answered."""
    if len(chain) == 1:
        return chain[0]
    hidden = getattr(response, "_hidden_params", None) or {}
    for key in ("model_group", "litellm_model_name"):
        if hidden.get(key) in chain:
            return hidden[key]
    answered = getattr(response, "model", None)
    for candidate in chain:
        if answered and (answered == candidate or candidate.endswith("/" + answered)):
            return candidate
    return answered or chain[0]
