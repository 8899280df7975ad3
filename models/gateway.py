"""The gateway: the one place a model is called.

Every call goes through ``Gateway.acomplete`` (or ``complete``, its sync twin), which
  1. checks the model string (one clear error naming the setting when it is wrong),
  2. reserves the call's worst case (prompt tokens + max_tokens) in the budget, or refuses it,
  3. waits for a concurrency slot and calls litellm (a ``Router`` when the spec names fallbacks; an in-process
     provider's handler directly, as litellm would),
  4. retries transient errors (timeouts, 429, 5xx, connection errors) with exponential backoff and jitter,
  5. writes one ledger record per attempt (model, tokens, cost, latency, error, run/subtask/role tags),
  6. settles the reservation with what was really spent (cancelled calls included).

Parallel sampling makes ``n`` separate calls (providers' own ``n`` is never relied on); ``samples()``
yields them as they finish and cancels the rest when the caller stops early (``local/`` models decode
concurrent calls as one batch).

What a call asks for is honoured or refused, never dropped: ``stop`` cuts every provider's reply (the
gateway cuts again what a provider left); ``response_format`` (``json_object``/``json_schema``, or a pydantic
class) goes to providers that honour it (``local/`` constrains decoding with a grammar) and is refused with
``ModelCallError`` (status 400) by one that cannot; ``adapter`` (a LoRA adapter GGUF) is served by ``local/``
models only and recorded on the call's ledger record.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from seasoned.errors import BudgetExceeded, ModelConfigError, SeasonedError
from seasoned.settings import default_model

from . import providers
from .budget import Budget, Reservation
from .failures import describe_failure, is_timeout, is_transient, one_line
from .grammar import normalize as normalize_response_format
from .handle import CallHandle, reset_handle, set_handle
from .ledger import CallRecord, Ledger, default_ledger
from .sync import run_sync
from .tags import current_tags

CANCELLED_RUNS_KEPT = 10_000
SAMPLING_KEYS = ("temperature", "top_p", "stop", "seed", "tools", "tool_choice", "response_format",
                 "presence_penalty", "frequency_penalty", "logit_bias", "api_base", "api_key")


@dataclass
class Completion:
    """One model reply and what it cost."""

    text: str
    model: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    call_id: str = ""
    tool_calls: list[dict] | None = None
    raw: Any = field(default=None, repr=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt k waits ``base * 2**(k-1)`` seconds (capped), less up to
    ``jitter`` of it at random, so that many clients hit by one 429 do not come back together."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        full = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return full * (1 - self.jitter * random.random())


def parse_model_spec(spec: str) -> list[str]:
    """``"primary|fallback|..."`` -> the ordered list of model strings (fallbacks go through litellm's Router)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelConfigError("model: expected a model string such as 'local/smollm2-135m' or 'openai/gpt-4o-mini'")
    chain = [part.strip() for part in spec.split("|")]
    if any(not part for part in chain):
        raise ModelConfigError(f"model {spec!r}: empty name in the fallback list (use 'primary|fallback')")
    return chain


def connection_params(api_base: str | None, api_key: str | None) -> dict[str, str]:
    """``api_base``/``api_key`` as ``Gateway`` keyword arguments, leaving out the ones not given (None or empty)."""
    return {key: value for key, value in (("api_base", api_base), ("api_key", api_key)) if value}


def cut_at_stop(text: str, stop: str | list[str] | None, finish_reason: str | None) -> tuple[str, str | None]:
    """``text`` up to its first stop string (the finish reason becomes ``stop``): what a provider that ignores
    ``stop`` sent is cut as one that honours it would have."""
    markers = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
    found = [i for i in (text.find(marker) for marker in markers) if i >= 0]
    if not found:
        return text, finish_reason
    return text[: min(found)], "stop"


def _checked_adapter(chain: list[str], adapter: str | os.PathLike) -> Path:
    from . import local

    return local.check_adapter(chain[0].partition("/")[2], adapter)


def _as_messages(prompt: str | list[dict]) -> list[dict]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "role" in m for m in prompt):
        raise ValueError("messages: expected a string or a list of {'role': ..., 'content': ...} dicts")
    return prompt


class Gateway:
    """Calls models through litellm with budgets, a ledger, retries and a concurrency limit.

    ``model`` is any litellm model string (``openai/gpt-4o-mini``, ``ollama/llama3``, ``hosted_vllm/...``),
    ``local/smollm2-135m`` (the embedded default), ``local/<path>.gguf`` or ``scripted/<name>``; append
    fallbacks with ``|`` (``openai/gpt-4o-mini|local/smollm2-135m``).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        ledger: Ledger | None = None,
        budget: Budget | None = None,
        max_concurrency: int = 16,
        retry: RetryPolicy | None = None,
        default_max_tokens: int = 512,
        timeout: float | None = 600.0,
        adapter: str | os.PathLike | None = None,
        **default_params: Any,
    ):
        self.model = model or default_model()
        self.adapter = adapter  # a LoRA adapter GGUF for every call of a local model (a call may name another)
        parse_model_spec(self.model)
        self.ledger = ledger if ledger is not None else default_ledger()
        self.budget = budget
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy()
        self.default_max_tokens = default_max_tokens
        self.timeout = timeout
        self.default_params = default_params
        self._semaphores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._routers: dict[tuple[str, ...], Any] = {}
        self._running: dict[str | None, int] = {}  # calls in progress per run id (settled ones leave)
        self._running_lock = threading.Lock()
        self._tasks: dict[str | None, set[asyncio.Task]] = {}  # the tasks waiting on those calls
        self._cancelled_runs: dict[str, None] = {}  # insertion-ordered, bounded (cancel_run)
        self._cut: dict[str, set[str]] = {}  # run id -> reply texts cut at max_tokens (bounded; forget_cut)

    # --- public API ---------------------------------------------------------------------------------
    async def acomplete(
        self,
        messages: str | list[dict],
        *,
        model: str | None = None,
        budget: Budget | None = None,
        max_tokens: int | None = None,
        shrink_to_fit: bool = False,
        run_id: str | None = None,
        subtask: str | None = None,
        role: str | None = None,
        timeout: float | None = None,
        adapter: str | os.PathLike | None = None,
        **sampling: Any,
    ) -> Completion:
        """One completion. Raises ``BudgetExceeded`` (call not made), ``ModelConfigError`` or ``ModelCallError``.

        ``shrink_to_fit=True`` lowers ``max_tokens`` to what the budget has left instead of refusing
        (never below 16 tokens). ``adapter``: a LoRA adapter GGUF trained on this local model's file (its
        ``seasoned.base_digest``), else the gateway's own ``adapter``; refused for other models.
        ``response_format={"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}`` (or
        ``{"type": "json_object"}``) constrains the reply where the provider can, and is refused where not.
        """
        chat = _as_messages(messages)
        chain = parse_model_spec(model or self.model)
        for name in chain:
            providers.validate(name)
        budget = budget if budget is not None else self.budget
        tags = current_tags().merged(run_id=run_id, subtask=subtask, role=role)
        unknown = set(sampling) - set(SAMPLING_KEYS)
        if unknown:
            raise ValueError(f"unknown sampling setting(s): {', '.join(sorted(unknown))}")
        params = {**self.default_params, **{k: v for k, v in sampling.items() if v is not None}}
        if params.get("response_format") is not None:
            params["response_format"] = normalize_response_format(params["response_format"])
            if params["response_format"] is None:
                params.pop("response_format")
        adapter = adapter if adapter is not None else self.adapter
        if adapter is not None:
            params["adapter"] = str(adapter)
        providers.check_request(chain, params)
        if adapter is not None:
            params["adapter"] = str(await asyncio.to_thread(_checked_adapter, chain, adapter))
        wanted_max_tokens = int(max_tokens or self.default_max_tokens)
        task = asyncio.current_task()
        with self._running_lock:
            if tags.run_id is not None and tags.run_id in self._cancelled_runs:
                raise asyncio.CancelledError(f"run {tags.run_id} was cancelled")  # nothing sent, nothing charged
            self._running[tags.run_id] = self._running.get(tags.run_id, 0) + 1
            if task is not None:
                self._tasks.setdefault(tags.run_id, set()).add(task)
        try:
            return await self._acomplete(chain, chat, budget, tags, params, wanted_max_tokens, shrink_to_fit,
                                         timeout)
        finally:
            with self._running_lock:
                left = self._running.get(tags.run_id, 1) - 1
                if left:
                    self._running[tags.run_id] = left
                else:
                    self._running.pop(tags.run_id, None)
                tasks = self._tasks.get(tags.run_id)
                if tasks is not None:
                    tasks.discard(task)
                    if not tasks:
                        self._tasks.pop(tags.run_id, None)

    def in_flight(self, run_id: str | None = None) -> int:
        """Calls of ``run_id`` not yet settled (all calls when None): a cancelled run's spend is final
        once this is 0, because every call writes its ledger record before it leaves."""
        with self._running_lock:
            if run_id is None:
                return sum(self._running.values())
            return self._running.get(run_id, 0)

    def cut_replies(self, run_id: str) -> set[str]:
        """The texts of ``run_id``'s replies that the provider cut at ``max_tokens`` (finish reason
        ``length``): a server reports ``finish_reason: "length"`` when the reply it sends is one of them."""
        with self._running_lock:
            return set(self._cut.get(run_id, ()))

    def forget_cut(self, run_id: str) -> None:
        with self._running_lock:
            self._cut.pop(run_id, None)

    def _note_cut(self, run_id: str | None, text: str) -> None:
        if run_id is None:
            return
        with self._running_lock:
            self._cut.setdefault(run_id, set()).add(text)
            while len(self._cut) > CANCELLED_RUNS_KEPT:  # runs nobody asked about: drop the oldest
                self._cut.pop(next(iter(self._cut)))

    def cancel_run(self, run_id: str) -> int:
        """Cancel the calls of ``run_id`` in flight (they are charged what was sent) and refuse its later
        ones: for a run nobody waits for any more (its client went away). Returns how many were cancelled."""
        with self._running_lock:
            self._cancelled_runs[run_id] = None
            while len(self._cancelled_runs) > CANCELLED_RUNS_KEPT:
                self._cancelled_runs.pop(next(iter(self._cancelled_runs)))
            tasks = list(self._tasks.get(run_id, ()))
        for task in tasks:
            task.get_loop().call_soon_threadsafe(task.cancel)
        return len(tasks)

    async def _acomplete(self, chain, chat, budget, tags, params, wanted_max_tokens, shrink_to_fit,
                         timeout) -> Completion:
        async with self._slot():
            attempt = 0
            while True:
                attempt += 1
                prompt_estimate = max([await providers.estimate_prompt_tokens(m, chat) for m in chain])
                call_max_tokens = self._fit_max_tokens(budget, prompt_estimate, wanted_max_tokens, shrink_to_fit)
                reservation = self._reserve(budget, chain, prompt_estimate, call_max_tokens)
                try:
                    return await self._attempt(chain, chat, call_max_tokens, params, tags, attempt,
                                               budget, reservation, timeout, prompt_estimate)
                except SeasonedError:
                    raise
                except Exception as exc:  # provider failure: retry when transient
                    if budget is not None and budget.seconds_left() <= 0:
                        raise BudgetExceeded(f"{budget.name}: wall-clock budget ran out during the call "
                                             "(max_seconds)", limit="seconds") from exc
                    if not (is_transient(exc) and attempt < self.retry.max_attempts):
                        raise describe_failure(chain[0], exc, params.get("api_base")) from exc
                    pause = self.retry.delay(attempt)
                    if budget is not None and budget.seconds_left() <= pause:
                        raise describe_failure(chain[0], exc, params.get("api_base")) from exc
                    await asyncio.sleep(pause)

    def complete(self, messages: str | list[dict], **kwargs: Any) -> Completion:
        """Synchronous ``acomplete`` (safe to call from threads and from inside a running loop)."""
        return run_sync(self.acomplete(messages, **kwargs))

    async def asample(self, messages: str | list[dict], n: int, *, seed: int | None = None,
                      **kwargs: Any) -> list[Completion | SeasonedError]:
        """``n`` independent samples in parallel (separate calls); failures come back as error objects."""
        async with self.samples(messages, n, seed=seed, **kwargs) as stream:
            results = [item async for item in stream]
        return results

    def sample(self, messages: str | list[dict], n: int, **kwargs: Any) -> list[Completion | SeasonedError]:
        return run_sync(self.asample(messages, n, **kwargs))

    def samples(self, messages: str | list[dict], n: int, *, seed: int | None = None,
                **kwargs: Any) -> SampleStream:
        """``async with gw.samples(msgs, 8) as stream: async for c in stream: ...`` yields samples as they
        finish; leaving the block early cancels the calls still in flight (their spend is still recorded).
        Sample ``i`` gets ``seed + i`` when a seed is given, so a seeded race is reproducible."""
        calls = [self.acomplete(messages, seed=None if seed is None else seed + i, **kwargs) for i in range(n)]
        return SampleStream(calls)

    # --- internals ----------------------------------------------------------------------------------
    def _slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        return semaphore

    @staticmethod
    def _fit_max_tokens(budget: Budget | None, prompt: int, wanted: int, shrink: bool) -> int:
        if budget is None or not shrink:
            return wanted
        room = budget.remaining_tokens() - prompt
        return int(min(wanted, max(room, 16)))

    @staticmethod
    def _reserve(budget: Budget | None, chain: list[str], prompt: int, max_tokens: int) -> Reservation | None:
        if budget is None:
            return None
        usd = max(providers.price(m, prompt, max_tokens)[0] for m in chain)
        return budget.reserve(prompt + max_tokens, usd)

    async def _attempt(self, chain, chat, max_tokens, params, tags, attempt, budget, reservation, timeout,
                       prompt_estimate):
        in_process = providers.provider_of(chain[0]) == "local"
        handle = CallHandle(prompt_tokens=None if in_process else prompt_estimate)
        token = set_handle(handle)
        started = time.perf_counter()
        record = CallRecord(model=chain[0], run_id=tags.run_id, subtask=tags.subtask, role=tags.role,
                            attempt=attempt, adapter=params.get("adapter"))
        limit = self._timeout(timeout, budget)
        try:
            response = await asyncio.wait_for(self._call(chain, chat, max_tokens, params, limit), limit)
        except BaseException as exc:
            record.latency_s = time.perf_counter() - started
            cancelled = isinstance(exc, asyncio.CancelledError)
            record.error = "cancelled" if cancelled else one_line(exc)
            # A call cancelled or timed out after it was sent is billed by the provider: what was sent
            # (the prompt) plus what streamed back. So is one that failed mid-generation.
            sent = cancelled or is_timeout(exc) or handle.completion_tokens > 0
            record.prompt_tokens = (handle.prompt_tokens or 0) if sent else 0
            record.completion_tokens = handle.completion_tokens
            self._finish(record, budget, reservation)
            raise
        finally:
            reset_handle(token)
        record.latency_s = time.perf_counter() - started
        usage = getattr(response, "usage", None)
        record.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        record.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        record.model = providers.model_used(response, chain)
        self._finish(record, budget, reservation)
        choice = response.choices[0]
        message = choice.message
        text, finish_reason = cut_at_stop(message.content or "", params.get("stop"), choice.finish_reason)
        if finish_reason == "length":
            self._note_cut(record.run_id, text)
        tool_calls = [tc.model_dump() if hasattr(tc, "model_dump") else dict(tc)
                      for tc in (getattr(message, "tool_calls", None) or [])] or None
        return Completion(
            text=text, model=record.model, finish_reason=finish_reason,
            prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
            cost_usd=record.cost_usd, latency_s=record.latency_s, call_id=record.id,
            tool_calls=tool_calls, raw=response,
        )

    def _timeout(self, timeout: float | None, budget: Budget | None) -> float | None:
        limits = [t for t in (timeout, self.timeout) if t is not None]
        if budget is not None and budget.deadline != float("inf"):
            limits.append(max(budget.seconds_left(), 0.001))
        return min(limits) if limits else None

    def _finish(self, record: CallRecord, budget: Budget | None, reservation: Reservation | None) -> None:
        record.cost_usd, record.cost_known = providers.price(record.model, record.prompt_tokens,
                                                             record.completion_tokens)
        self.ledger.record(record)
        if budget is not None and reservation is not None:
            budget.settle(reservation, record.total_tokens, record.cost_usd)

    async def _call(self, chain: list[str], chat: list[dict], max_tokens: int, params: dict,
                    timeout: float | None):
        if len(chain) == 1 and providers.in_process(chain[0]):
            return await providers.acomplete_in_process(chain[0], chat, max_tokens, params, timeout)
        litellm = providers.litellm()
        kwargs = {"messages": chat, "max_tokens": max_tokens, **params}
        if timeout is not None:
            kwargs["timeout"] = timeout
        if len(chain) == 1:
            return await litellm.acompletion(model=chain[0], num_retries=0, **kwargs)
        return await self._router(chain).acompletion(model=chain[0], **kwargs)

    def _router(self, chain: list[str]):
        key = tuple(chain)
        if key not in self._routers:
            litellm = providers.litellm()
            self._routers[key] = litellm.Router(
                model_list=[{"model_name": m, "litellm_params": {"model": m}} for m in dict.fromkeys(chain)],
                fallbacks=[{chain[0]: chain[1:]}],
                num_retries=0,
            )
        return self._routers[key]


class SampleStream:
    """Samples as they finish; on exit, calls still in flight are cancelled and awaited (so accounted)."""

    def __init__(self, calls: list):
        self._calls = calls
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.ensure_future(call) for call in self._calls]
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.cancel()

    async def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aiter__(self) -> AsyncIterator[Completion | SeasonedError]:
        for next_done in asyncio.as_completed(self._tasks):
            try:
                yield await next_done
            except SeasonedError as exc:
                yield exc


_default_gateway: Gateway | None = None


def default_gateway() -> Gateway:
    """A process-wide gateway on the default model and the default ledger."""
    global _default_gateway
    if _default_gateway is None:
        _default_gateway = Gateway()
    return _default_gateway


async def acomplete(messages: str | list[dict], **kwargs: Any) -> Completion:
    return await default_gateway().acomplete(messages, **kwargs)


def complete(messages: str | list[dict], **kwargs: Any) -> Completion:
    return default_gateway().complete(messages, **kwargs)


__all__ = [
    "BudgetExceeded",
    "Completion",
    "Gateway",
    "RetryPolicy",
    "SampleStream",
    "acomplete",
    "complete",
    "connection_params",
    "default_gateway",
    "parse_model_spec",
]
