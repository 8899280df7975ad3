"""Chat completion bodies and server-sent event chunks in the OpenAI format, plus the ``seasoned`` field.

Streaming order: a first chunk with ``delta.role``; progress chunks (``delta`` empty, ``finish_reason``
null, an extra ``seasoned`` field ``{"event": kind, "node": ..., "data": {...}}``) while the run works;
the answer as one content chunk; a last chunk with ``finish_reason``, ``usage`` and ``seasoned`` (the run
summary); then ``data: [DONE]``. Standard clients ignore the extra field and the empty deltas.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
from pydantic_core import to_jsonable_python
from seasoned.errors import ApiError
from seasoned.graphs import Event, RunResult
from seasoned.models import SeasonedError
from seasoned.models.untrusted import finite_or_none
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .schemas import cut_at_stop, reply_format_error
from .service import RequestPlan, Service, ShuttingDown
from .slots import Slot


def run_summary(result: RunResult, plan: RequestPlan) -> dict:
    """The ``seasoned`` field of a reply."""
    return {"run_id": result.run_id, "answer": result.answer, "verified": result.verified,
            "confidence": result.confidence, "verified_by": result.verified_by, "stop_reason": result.stop_reason,
            "strategy": result.strategy, "model": plan.model, "namespace": plan.namespace,
            "memory_ids": result.memory_ids, "spend": result.spend.model_dump(), "budget": plan.budget}


def check_result(result: RunResult, plan: RequestPlan) -> None:
    """A run with no usable candidate, or a reply that is not what ``response_format`` asked for, is an
    error for the client (the run itself stays recorded)."""
    if result.candidates and any(c["status"] == "ok" for c in result.candidates):
        problem = reply_format_error(reply_text(result, plan), plan.sampling)
        if problem:
            raise ApiError(502, f"response_format: {problem}", param="response_format",
                           code="invalid_response_format", extra={"run_id": result.run_id})
        return
    statuses = {c["status"] for c in result.candidates}
    errors = [c.get("error") for c in result.candidates if c.get("error")]
    extra = {"run_id": result.run_id}
    if statuses <= {"budget"}:
        raise ApiError(402, f"the budget ran out before any answer was produced ({errors[0] if errors else ''})",
                       code="budget_exhausted", extra=extra)
    raise ApiError(502, f"the model produced no answer: {errors[0] if errors else result.stop_reason}",
                   code="model_error", extra=extra)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data with non-finite floats as null: a judge's NaN score (or any other) must
    never make a reply or a stream chunk invalid JSON."""
    return finite_or_none(to_jsonable_python(value, fallback=str))


def dumps(value: Any) -> str:
    return json.dumps(json_safe(value), allow_nan=False)


def reply_text(result: RunResult, plan: RequestPlan) -> str:
    """The reply sent: the selected candidate's text, cut at the client's ``stop`` sequences."""
    return cut_at_stop(result.text or "", plan.sampling)


def completion_body(result: RunResult, plan: RequestPlan, usage: dict, finish_reason: str = "stop") -> dict:
    return json_safe({
        "id": f"chatcmpl-{result.run_id}", "object": "chat.completion", "created": int(time.time()),
        "model": plan.label,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_text(result, plan)},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage,
        "seasoned": run_summary(result, plan),
    })


def _chunk(chunk_id: str, plan: RequestPlan, created: int, delta: dict, finish: str | None = None,
           **extra: Any) -> str:
    body = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": plan.label,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
    return f"data: {dumps(body)}\n\n"


def progress(event: Event) -> dict:
    return {"event": event.kind, "run_id": event.run_id, "node": event.node, "data": event.data}


async def sse_events(service: Service, plan: RequestPlan) -> AsyncIterator[str]:
    """The run as server-sent events. A client that disconnects cancels the run (``Service.events``)."""
    created = int(time.time())
    chunk_id = f"chatcmpl-{plan.run_id}"
    yield _chunk(chunk_id, plan, created, {"role": "assistant", "content": ""})
    result: RunResult | None = None
    try:
        async with aclosing(service.progress(plan)) as events:  # closing this stream closes the run's
            async for event in events:
                if event.kind == "result":
                    result = event.data["result"]
                else:
                    yield _chunk(chunk_id, plan, created, {}, seasoned=progress(event))
        if result is None:
            raise ApiError(502, "the run ended without a result")
        check_result(result, plan)
    except ShuttingDown as exc:
        service.finished(plan.run_id)
        yield f"data: {dumps(exc.api_error().body())}\n\n"
        yield "data: [DONE]\n\n"
        return
    except ApiError as exc:
        service.finished(plan.run_id)
        yield f"data: {dumps(exc.body())}\n\n"
        yield "data: [DONE]\n\n"
        return
    except SeasonedError as exc:
        service.finished(plan.run_id)
        yield f"data: {dumps(ApiError(502, str(exc)).body())}\n\n"
        yield "data: [DONE]\n\n"
        return
    yield _chunk(chunk_id, plan, created, {"content": reply_text(result, plan)})
    usage = service.usage(result.run_id) if plan.include_usage else None
    finish = service.finish_reason(result)
    service.finished(plan.run_id)
    yield _chunk(chunk_id, plan, created, {}, finish, usage=usage, seasoned=run_summary(result, plan))
    yield "data: [DONE]\n\n"


class SlotStreamingResponse(StreamingResponse):
    """A streaming response that gives the key's in-flight slot back however the stream ends
    (finished, failed, or cancelled by a client that went away)."""

    def __init__(self, content: AsyncIterator[str], slot: Slot, **kwargs: Any):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            # Watch for the client going away ourselves: with ASGI spec 2.4 Starlette only notices it at
            # the next send, which may be minutes away while samples run. Leaving cancels the stream.
            async with anyio.create_task_group() as group:
                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await super().__call__(scope, receive, send)
                group.cancel_scope.cancel()
        finally:
            await self.slot.release()
            # A client gone while the stream waited to send leaves the generator suspended: close it now
            # (not whenever it is garbage-collected), which cancels the run and records it.
            closer = getattr(self.body_iterator, "aclose", None)
            if closer is not None:
                await closer()

