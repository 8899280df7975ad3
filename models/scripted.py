"""The ``scripted/<name>`` provider: deterministic replies for tests, through the gateway's in-process path.

    from seasoned.models import scripted
    scripted.register("echo", fn=lambda messages, params: messages[-1]["content"])
    scripted.register("queue", replies=["first", scripted.rate_limit(), "second"])

A reply is a string, an exception to raise (``rate_limit()``, ``timeout()``, ``bad_request()``,
``server_error()``), or a callable ``(messages, params) -> str``. ``delay`` seconds are waited per call
(asynchronously on the async path), which makes concurrency and cancellation testable.
Token counts are deterministic (words and punctuation), ``max_tokens`` truncates, ``stop`` cuts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from seasoned.errors import ModelConfigError

from .responses import text_response
from .tokens import _TOKEN, count_message_tokens, count_text_tokens

Reply = Union[str, BaseException, Callable[[list, dict], Any]]


@dataclass
class ScriptedModel:
    name: str
    replies: deque = field(default_factory=deque)
    fn: Callable[[list, dict], Any] | None = None
    delay: float = 0.0
    calls: int = 0
    seen: list = field(default_factory=list)  # (messages, params) of every call, for assertions
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next_reply(self, messages: list, params: dict) -> str:
        with self._lock:
            self.calls += 1
            self.seen.append((messages, params))
            reply: Reply | None = self.replies.popleft() if self.replies else self.fn
        if reply is None:
            raise bad_request(f"scripted model {self.name!r} has no replies left", model=self.name)
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(messages, params)
        if isinstance(reply, BaseException):
            raise reply
        return str(reply)


_models: dict[str, ScriptedModel] = {}


def register(name: str, replies: list[Reply] | None = None, *, fn: Callable[[list, dict], Any] | None = None,
             delay: float = 0.0) -> ScriptedModel:
    """Define (or redefine) ``scripted/<name>``: queued ``replies`` first, then ``fn`` for every later call."""
    model = ScriptedModel(name=name, replies=deque(replies or []), fn=fn, delay=delay)
    _models[name] = model
    return model


def get(name: str) -> ScriptedModel:
    try:
        return _models[name]
    except KeyError:
        known = ", ".join(sorted(_models)) or "none"
        raise ModelConfigError(
            f"model 'scripted/{name}' is not registered (scripted models defined: {known}); "
            "define it with seasoned.models.scripted.register(name, ...)"
        ) from None


def unregister(name: str) -> None:
    _models.pop(name, None)


# --- injectable provider errors (litellm's own exception types) -------------------------------------
def rate_limit(message: str = "scripted: rate limited (429)", model: str = "scripted") -> BaseException:
    import litellm

    return litellm.RateLimitError(message=message, llm_provider="scripted", model=model)


def timeout(message: str = "scripted: request timed out", model: str = "scripted") -> BaseException:
    import litellm

    return litellm.Timeout(message=message, model=model, llm_provider="scripted")


def server_error(message: str = "scripted: internal server error (500)", model: str = "scripted") -> BaseException:
    import litellm

    return litellm.InternalServerError(message=message, llm_provider="scripted", model=model)


def bad_request(message: str = "scripted: bad request (400)", model: str = "scripted") -> BaseException:
    import litellm

    return litellm.BadRequestError(message=message, model=model, llm_provider="scripted")


# --- the litellm handler -----------------------------------------------------------------------------
def _truncate(text: str, max_tokens: int | None, stop: list[str] | str | None) -> tuple[str, str]:
    finish = "stop"
    for marker in [stop] if isinstance(stop, str) else (stop or []):
        if marker and marker in text:
            text = text[: text.index(marker)]
    if max_tokens is not None and count_text_tokens(text) > max_tokens:
        matches = list(_TOKEN.finditer(text))
        text = text[: matches[max_tokens - 1].end()] if max_tokens > 0 else ""
        finish = "length"
    return text, finish


def count_prompt_tokens(model: str, messages: list[dict]) -> int:
    return count_message_tokens(messages)


def make_handler():
    """The litellm CustomLLM for ``scripted/`` (built lazily so importing this module stays light)."""
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    def build(model: str, messages: list, optional_params: dict) -> litellm.ModelResponse:
        scripted_model = get(model)
        text = scripted_model.next_reply(messages, dict(optional_params))
        text, finish = _truncate(text, optional_params.get("max_tokens"), optional_params.get("stop"))
        return text_response(f"scripted/{model}", text, finish, count_message_tokens(messages),
                             count_text_tokens(text))

    class ScriptedLLM(CustomLLM):
        def completion(self, model, messages, *args, optional_params=None, **kwargs):
            delay = get(model).delay
            if delay:
                time.sleep(delay)
            return build(model, messages, optional_params or {})

        async def acompletion(self, model, messages, *args, optional_params=None, **kwargs):
            delay = get(model).delay
            if delay:
                await asyncio.sleep(delay)
            return build(model, messages, optional_params or {})

    return ScriptedLLM()
