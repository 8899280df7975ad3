"""Continuous batching for ``local/`` models: one llama.cpp context decodes every concurrent call as a sequence.

One ``BatchEngine`` owns one llama.cpp context (with a unified KV cache shared by up to ``MAX_SEQUENCES``
sequences) and one worker thread. Each loop of that thread
  1. admits waiting requests that fit in the KV cache (a request joins the running batch at the next step),
  2. decodes at most one chunk of one admitted prompt (so a long prompt does not stall the others for long),
  3. decodes one token of every running sequence in a single ``llama_decode`` and samples each one with its
     own llama.cpp sampler chain (grammar, top-k, top-p, min-p, temperature, a ``dist`` sampler seeded per
     call), then retires the sequences that stopped, hit ``max_tokens`` or were cancelled.

A prompt's KV is shared, not recomputed: a new sequence copies (``llama_memory_seq_cp``, metadata only in a
unified cache) the longest prefix it has in common with a running or recently finished sequence, and decodes
only the rest. Finished sequences stay as a small prefix cache until their ids are needed.

Reproducibility: a sequence always decodes its prompt minus the last token, then the last prompt token as its
first step, and samples from its own logits row. On llama.cpp's CPU kernels decoding with one thread, a row's
logits do not depend on which other rows share the batch, nor on how a prompt was split into chunks (with
more threads, llama.cpp's attention splits its work by the batch's shape, which moves the last bits: a seeded
sample is still the same each time alone, but in a batch now and then samples another token; measured on 8
samples x 64 tokens: 8/8 the same with one thread, 3/8 with two, and 0/8 with flash attention off);
attention visits a sequence's KV cells in cell order, so a sequence's cells must lie in the order of its
positions. Hence KV cells are never freed one sequence at a time (a freed hole could take a later token before
an earlier one): cells are allocated upwards, an evicted sequence's cells go to a "retired" sequence id, and
the whole cache is cleared once it is full and no call is running (calls that do not fit wait for that). So
with one thread a sample under a seed is the same alone or in a batch (tests/test_models_local_batch.py
checks it on the embedded model).
"""

from __future__ import annotations

import codecs
import concurrent.futures
import ctypes
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from seasoned.errors import ModelCallError

from .cores import usable_threads
from .handle import CallHandle

MAX_SEQUENCES = 8  # sequences decoded together; more calls wait for a free one
CACHED_PREFIXES = 8  # finished sequences kept for their KV (prompt reuse), on top of the running ones
POOL_FACTOR = 2  # KV cells of a context = POOL_FACTOR x the per-call context size (SEASONED_LOCAL_N_CTX)
PROMPT_CHUNK = 512  # prompt tokens per llama_decode
TOP_K, MIN_P = 40, 0.05  # llama-cpp-python's defaults, which this provider always used


@dataclass
class Request:
    """One call: its prompt tokens, sampling settings, and (filled by the engine) its decoding state."""

    prompt: list[int]
    max_tokens: int
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    grammar: Any = None  # a parsed llama.cpp grammar sampler to clone (see LocalModel.grammar_sampler)
    handle: CallHandle = field(default_factory=CallHandle)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    # --- decoding state (engine thread only) ---
    seq: int = -1
    sampler: Any = None
    kv_tokens: list[int] = field(default_factory=list)  # tokens whose KV the cache holds for ``seq``
    prefilled: int = 0  # prompt tokens (of prompt[:-1]) whose KV is in the cache
    next_token: int = -1
    generated: int = 0
    text: str = ""
    stop_checked: int = 0  # characters of ``text`` already searched for stop strings
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("ignore"))

    planned: int = 0  # KV cells it may still allocate when admitted (prompt not shared + max_tokens)
    allocated: int = 0  # KV cells it has allocated

    @property
    def cells(self) -> int:
        """KV cells this request needs at most (no prefix shared)."""
        return len(self.prompt) + self.max_tokens


@dataclass
class Cached:
    """A finished sequence kept for its KV: a later prompt with the same prefix starts from it."""

    seq: int
    kv_tokens: list[int]


class BatchEngine:
    """One llama.cpp context and the thread that decodes all of its calls together (see the module doc)."""

    def __init__(self, model: Any, *, n_ctx: int, n_threads: int, adapter: Any = None, name: str = "local"):
        import llama_cpp

        self._llama = llama_cpp
        self.model = model  # a LocalModel: .model (llama_model*), .vocab, .piece(), .is_eog()
        self.n_ctx = n_ctx  # per sequence
        self.pool = n_ctx * POOL_FACTOR
        self.adapter = adapter
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.pool
        params.n_batch = params.n_ubatch = PROMPT_CHUNK
        params.n_seq_max = MAX_SEQUENCES + CACHED_PREFIXES + 1  # the last id holds retired cells
        params.n_threads = params.n_threads_batch = n_threads
        self.n_threads = self.threads_in_use = n_threads
        params.kv_unified = True
        self.ctx = llama_cpp.llama_init_from_model(model.model, params)
        if self.ctx is None:
            raise ModelCallError(f"{name}: llama.cpp could not create a context of {self.pool} cells")
        if adapter is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(1.0)
            if llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales) != 0:
                llama_cpp.llama_free(self.ctx)
                raise ModelCallError(f"{name}: llama.cpp could not apply the LoRA adapter")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(PROMPT_CHUNK, 0, 1)
        self.name = name
        self._pending: list[Request] = []
        self._prefill: list[Request] = []  # admitted, prompt not yet fully decoded
        self._active: list[Request] = []  # decoding one token per step
        self._cached: OrderedDict[int, Cached] = OrderedDict()  # least recently used first
        self._free_seqs = list(range(MAX_SEQUENCES + CACHED_PREFIXES))
        self._retired_seq = MAX_SEQUENCES + CACHED_PREFIXES
        self.allocated = 0  # KV cells allocated since the cache was last cleared (cells are allocated upwards)
        self._wake = threading.Condition()
        self._closed = False
        self._forget = False  # drop the prefix cache at the next idle moment (forget_prompts)
        self.steps = 0  # what the engine did (for tests and benchmarks): decoding steps,
        self.peak_batch = 0  # the most sequences decoded in one step,
        self.prefill_tokens = 0  # prompt tokens decoded (those copied from another sequence are not),
        self.clears = 0  # times the full cache was cleared
        self._thread = threading.Thread(target=self._run, name=f"seasoned-{name}", daemon=True)
        self._thread.start()

    # --- called from any thread -------------------------------------------------------------------------
    def submit(self, request: Request) -> concurrent.futures.Future:
        """Queue ``request``; its future gets ``{"text", "finish_reason", "prompt_tokens", "completion_tokens"}``."""
        if request.cells > self.pool:
            raise ModelCallError(f"{self.name}: a call of {request.cells} tokens cannot fit {self.pool} KV cells")
        with self._wake:
            if self._closed:
                raise ModelCallError(f"{self.name}: the model's context was closed")
            self._pending.append(request)
            self._wake.notify()
        return request.future

    def poke(self) -> None:
        """Wake the worker (a call was cancelled: it leaves the batch at the next step)."""
        with self._wake:
            self._wake.notify()

    def forget_prompts(self) -> None:
        """Drop the cached prompts once no call runs (benchmarks compare arms that start from nothing)."""
        with self._wake:
            self._forget = True
            self._wake.notify()

    def busy(self) -> bool:
        with self._wake:
            return bool(self._pending or self._prefill or self._active)

    def close(self) -> None:
        """Stop the worker (calls still queued fail) and free the context once it has stopped."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    # --- the worker thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not (self._closed or self._pending or self._prefill or self._active or self._forget):
                        self._wake.wait()
                    if self._closed:
                        break
                    arrived, self._pending = self._pending, []
                try:
                    self._cycle(arrived)
                except Exception as exc:  # noqa: BLE001 - a llama.cpp failure fails the calls, not the thread
                    self._fail_all(exc)
        finally:
            self._fail_all(ModelCallError(f"{self.name}: the model's context was closed"))
            self._llama.llama_batch_free(self.batch)
            self._llama.llama_free(self.ctx)

    def _cycle(self, arrived: list[Request]) -> None:
        if self._forget and not (self._active or self._prefill):
            self._forget = False
            self._clear()
        waiting = self._admit(arrived)
        if waiting:
            with self._wake:
                self._pending[:0] = waiting  # first come, first served: they keep their place
        self._drop_cancelled()
        if self._prefill:
            self._prefill_chunk(self._prefill[0])
        if self._active:
            self._step()

    def _admit(self, arrived: list[Request]) -> list[Request]:
        """Give arrived requests a sequence while ids and cells allow; returns those that must wait."""
        waiting = []
        for request in arrived:
            if request.handle.cancelled.is_set():  # cancelled while waiting: nothing was processed or charged
                self._resolve(request, "cancelled", charged_prompt=False)
                continue
            if waiting or not self._place(request):
                waiting.append(request)
        return waiting

    def _place(self, request: Request) -> bool:
        running = self._active + self._prefill
        if len(running) >= MAX_SEQUENCES:
            return False
        donor, shared = self._best_donor(request.prompt[:-1])
        if any(_common_prefix(r.prompt[:-1], request.prompt[:-1]) > shared for r in self._prefill):
            return False  # a prompt being decoded now has more in common: wait for it and copy it
        future = self.allocated + sum(r.planned - r.allocated for r in running)
        if future + request.cells - shared > self.pool:
            if running:
                return False  # it waits for the batch to drain, then the cache is cleared
            self._clear()
            donor, shared = -1, 0
        if not self._free_seqs:
            self._evict(next(seq for seq in self._cached if seq != donor))
        request.seq = self._free_seqs.pop(0)
        if shared:
            self._llama.llama_memory_seq_cp(self.memory, donor, request.seq, 0, shared)
            if donor in self._cached:
                self._cached.move_to_end(donor)
        request.planned = request.cells - shared
        request.prefilled = shared
        request.kv_tokens = list(request.prompt[:shared])
        request.handle.prompt_tokens = len(request.prompt)  # from here on the prompt is really processed
        request.handle.completion_tokens = 0
        request.sampler = self._sampler(request)
        self._prefill.append(request)
        return True

    def _best_donor(self, prefix: list[int]) -> tuple[int, int]:
        best, shared = -1, 0
        holders = [(r.seq, r.kv_tokens) for r in self._active + self._prefill]
        holders += [(c.seq, c.kv_tokens) for c in self._cached.values()]
        for seq, tokens in holders:
            n = _common_prefix(tokens, prefix)
            if n > shared:
                best, shared = seq, n
        return best, shared

    def _evict(self, seq: int) -> None:
        """Free a cached sequence's id; its cells stay allocated (under the retired id) until the next clear."""
        self._cached.pop(seq)
        self._llama.llama_memory_seq_cp(self.memory, seq, self._retired_seq, -1, -1)
        self._llama.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self._free_seqs.append(seq)

    def _clear(self) -> None:
        self._llama.llama_memory_clear(self.memory, True)
        self._cached.clear()
        self._free_seqs = list(range(MAX_SEQUENCES + CACHED_PREFIXES))
        self.allocated = 0
        self.clears += 1

    def _sampler(self, request: Request) -> Any:
        llama = self._llama
        chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
        if request.grammar is not None:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_clone(request.grammar))
        if request.temperature <= 0:
            llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_greedy())
            return chain
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_k(TOP_K))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_top_p(request.top_p, 1))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_min_p(MIN_P, 1))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_temp(request.temperature))
        llama.llama_sampler_chain_add(chain, llama.llama_sampler_init_dist(request.seed & 0xFFFFFFFF))
        return chain

    def _prefill_chunk(self, request: Request) -> None:
        prefix = request.prompt[:-1]
        chunk = prefix[request.prefilled: request.prefilled + PROMPT_CHUNK]
        if chunk:
            self._clear_batch()
            for offset, token in enumerate(chunk):
                self._add(token, request.prefilled + offset, request.seq, False)
            self._decode()
            self.prefill_tokens += len(chunk)
            self.allocated += len(chunk)
            request.allocated += len(chunk)
            request.prefilled += len(chunk)
            request.kv_tokens.extend(chunk)
        if request.prefilled >= len(prefix):
            self._prefill.remove(request)
            request.next_token = request.prompt[-1]
            self._active.append(request)

    def _step(self) -> None:
        self._clear_batch()
        running = list(self._active)
        for request in running:
            self._add(request.next_token, len(request.kv_tokens), request.seq, True)
        self._decode()
        self.steps += 1
        self.peak_batch = max(self.peak_batch, len(running))
        self.allocated += len(running)
        for row, request in enumerate(running):
            request.allocated += 1
            request.kv_tokens.append(request.next_token)
            if request.handle.cancelled.is_set():
                self._retire(request, "cancelled")
                continue
            token = self._llama.llama_sampler_sample(request.sampler, self.ctx, row)
            if self.model.is_eog(token):
                self._retire(request, "stop")
                continue
            request.generated += 1
            request.handle.completion_tokens = request.generated
            request.text += request.decoder.decode(self.model.piece(token))
            if self._cut_at_stop(request):
                self._retire(request, "stop")
            elif request.generated >= request.max_tokens:
                self._retire(request, "length")
            else:
                request.next_token = token

    @staticmethod
    def _cut_at_stop(request: Request) -> bool:
        if not request.stop:
            return False
        longest = max(len(s) for s in request.stop)
        start = max(0, request.stop_checked - longest + 1)
        found = [i for i in (request.text.find(s, start) for s in request.stop) if i >= 0]
        request.stop_checked = len(request.text)
        if found:
            request.text = request.text[: min(found)]
            return True
        return False

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._prefill + self._active if r.handle.cancelled.is_set()]:
            self._retire(request, "cancelled")

    def _retire(self, request: Request, finish_reason: str) -> None:
        """The request leaves the batch; its sequence stays as a cached prefix (the oldest one goes)."""
        for group in (self._active, self._prefill):
            if request in group:
                group.remove(request)
        self._llama.llama_sampler_free(request.sampler)
        request.sampler = None
        if request.kv_tokens:
            self._cached[request.seq] = Cached(request.seq, request.kv_tokens)
        else:
            self._free_seqs.append(request.seq)  # it holds no cell
        while len(self._cached) > CACHED_PREFIXES:
            self._evict(next(iter(self._cached)))
        if finish_reason != "cancelled":
            request.text += request.decoder.decode(b"", final=True)
        self._resolve(request, finish_reason)

    @staticmethod
    def _resolve(request: Request, finish_reason: str, charged_prompt: bool = True) -> None:
        result = {"text": request.text, "finish_reason": finish_reason,
                  "prompt_tokens": len(request.prompt) if charged_prompt else 0,
                  "completion_tokens": request.generated}
        if request.future.set_running_or_notify_cancel():  # False: nobody waits for it any more
            request.future.set_result(result)

    def _fail_all(self, exc: BaseException) -> None:
        with self._wake:
            pending, self._pending = self._pending, []
        for request in pending + self._prefill + self._active:
            if request.sampler is not None:
                self._llama.llama_sampler_free(request.sampler)
                request.sampler = None
            if not request.future.done() and request.future.set_running_or_notify_cancel():
                error = exc if isinstance(exc, ModelCallError) else ModelCallError(f"{self.name}: {exc}")
                request.future.set_exception(error)
        self._prefill, self._active = [], []
        self._clear()

    # --- the llama.cpp batch ----------------------------------------------------------------------------
    def _clear_batch(self) -> None:
        self.batch.n_tokens = 0

    def _add(self, token: int, pos: int, seq: int, logits: bool) -> None:
        batch, i = self.batch, self.batch.n_tokens
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens = i + 1

    def _decode(self) -> None:
        threads = usable_threads(self.n_threads)
        if threads != self.threads_in_use:  # cores were lent to (or given back by) work beside the model
            self._llama.llama_set_n_threads(self.ctx, threads, threads)
            self.threads_in_use = threads
        status = self._llama.llama_decode(self.ctx, self.batch)
        if status != 0:
            raise ModelCallError(f"{self.name}: llama_decode failed (status {status})")


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
